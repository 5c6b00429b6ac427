// The chat demo is served by the broker under /chat on its WebSocket listeners, from files
// embedded in the binary (src/web/chat_assets.rs, written by ../gen-assets.mjs after the build).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/chat/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // One script and one stylesheet: every file is a request on a fresh connection (the
    // listener answers one GET per connection), and all of it ships inside the broker.
    assetsInlineLimit: 0,
    modulePreload: false,
    reportCompressedSize: true,
  },
});
