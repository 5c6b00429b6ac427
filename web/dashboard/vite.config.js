// The dashboard is served by the broker's HTTP listener under / from files embedded in the
// binary (src/web/dashboard_assets.rs, written by ../gen-assets.mjs after the build).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: false,
  },
  server: {
    // `vite dev` against a broker on the default [http] bind.
    proxy: { '/api': 'http://127.0.0.1:18083' },
  },
});
