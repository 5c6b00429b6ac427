// Sessions, connected or not (devices whose persistent session the broker keeps while they are
// away): search by client id substring, pages of 50. Refreshed every 2 s while shown.
import { api } from '../api.js';
import { h, table, pager } from '../dom.js';

export function sessions(main) {
  let page = 1;
  const search = h('input', { type: 'search', placeholder: 'Search client ids', testid: 'session-search' });
  const box = h('div', {});
  const msg = h('p', { class: 'error', role: 'alert' });
  async function load() {
    try {
      const r = await api.sessions({ page, limit: 50, like: search.value });
      msg.textContent = '';
      box.replaceChildren(table([
        { title: 'Client id', cell: (s) => h('code', {}, s.clientid) },
        { title: 'State', cell: (s) => h('span', { class: s.connected ? 'pill on' : 'pill' }, s.connected ? 'connected' : 'offline') },
        { title: 'Expiry', num: true, cell: (s) => (s.expiry_s === null || s.expiry_s === undefined ? '–' : `${s.expiry_s}s`) },
        { title: 'Subs', num: true, cell: (s) => s.subscriptions },
        { title: 'Queued', num: true, cell: (s) => s.queued },
        { title: 'Inflight', num: true, cell: (s) => s.inflight },
        { title: 'Shard', num: true, cell: (s) => s.shard },
      ], (r.data || []).map((s) => ({ ...s, __key: s.clientid })), { empty: 'No session.', testid: 'sessions' }),
      pager(r.meta, (p) => { page = p; load(); }));
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  let debounce = null;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { page = 1; load(); }, 250);
  });
  main.append(h('div', { class: 'toolbar' }, search), msg, h('section', { class: 'card' }, box));
  load();
  const timer = setInterval(load, 2000);
  return { destroy: () => { clearInterval(timer); clearTimeout(debounce); } };
}
