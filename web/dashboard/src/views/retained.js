// Retained messages: search by topic substring, payload preview, delete.
import { api } from '../api.js';
import { h, table, pager, fmtBytes } from '../dom.js';

function preview(m) {
  if (typeof m.payload === 'string') {
    const t = m.payload.length > 120 ? `${m.payload.slice(0, 120)}…` : m.payload;
    return h('code', { class: 'payload' }, t);
  }
  if (m.payload_base64) return h('span', { class: 'muted' }, `binary (base64 ${m.payload_base64.slice(0, 40)}…)`);
  return h('span', { class: 'muted' }, '–');
}

export function retained(main) {
  let page = 1;
  const search = h('input', { type: 'search', placeholder: 'Search topics', testid: 'retained-search' });
  const box = h('div', {});
  const msg = h('p', { class: 'status-line', role: 'status' });
  async function load() {
    try {
      const r = await api.retained({ page, limit: 50, like: search.value });
      box.replaceChildren(table([
        { title: 'Topic', cell: (m) => h('code', {}, m.topic) },
        { title: 'QoS', num: true, cell: (m) => m.qos },
        { title: 'Size', num: true, cell: (m) => fmtBytes(m.payload_size) },
        { title: 'Payload', cell: preview },
        { title: '', cell: (m) => h('button', { class: 'danger small', testid: 'delete-retained', onclick: () => del(m.topic) }, 'Delete') },
      ], (r.data || []).map((m) => ({ ...m, __key: m.topic })), { empty: 'No retained message.', testid: 'retained' }),
      pager(r.meta, (p) => { page = p; load(); }));
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  async function del(topic) {
    try {
      await api.deleteRetained(topic);
      msg.textContent = `Deleted the retained message of ${topic}.`;
    } catch (e) {
      msg.textContent = `Delete ${topic}: ${e.message}`;
    }
    load();
  }
  let debounce = null;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { page = 1; load(); }, 250);
  });
  main.append(h('div', { class: 'toolbar' }, search, h('button', { class: 'ghost', onclick: load }, 'Refresh')),
    msg, h('section', { class: 'card' }, box));
  load();
  return { destroy: () => clearTimeout(debounce) };
}
