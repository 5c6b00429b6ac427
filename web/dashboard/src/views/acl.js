// The ACL file as the broker loaded it, and a reload (the old ACL stays on a parse error).
import { api } from '../api.js';
import { h } from '../dom.js';

export function acl(main) {
  const info = h('p', { class: 'muted', testid: 'acl-info' });
  const text = h('pre', { class: 'acl', testid: 'acl-text' });
  const msg = h('p', { class: 'status-line', role: 'status', testid: 'acl-status' });
  async function load() {
    try {
      const r = await api.acl();
      info.textContent = r.file ? `${r.file}: ${r.rules} rules` : 'No acl_file configured: every client may use every topic its authentication allows.';
      text.textContent = r.text || '';
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  main.append(info, h('div', { class: 'toolbar' }, h('button', { testid: 'acl-reload', onclick: async () => {
    try {
      await api.reloadAcl();
      msg.textContent = `Reloaded at ${new Date().toLocaleTimeString()}.`;
    } catch (e) {
      msg.textContent = `Reload failed (the old ACL stays): ${e.message}`;
    }
    load();
  } }, 'Reload from file')), msg, h('section', { class: 'card' }, text));
  load();
  return null;
}
