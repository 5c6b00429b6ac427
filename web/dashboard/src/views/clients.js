// Connected clients: search by client id substring, pages of 50, kick (DISCONNECT 0x98 for
// MQTT 5 clients). Refreshed every 2 s while shown.
import { api } from '../api.js';
import { h, table, pager } from '../dom.js';

const PROTO = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

export function clients(main) {
  let page = 1;
  const search = h('input', { type: 'search', placeholder: 'Search client ids', testid: 'client-search' });
  const box = h('div', {});
  const msg = h('p', { class: 'status-line', role: 'status', testid: 'clients-status' });
  let timer = null;
  async function load() {
    try {
      const r = await api.clients({ page, limit: 50, like: search.value });
      box.replaceChildren(table([
        { title: 'Client id', cell: (c) => h('code', {}, c.clientid) },
        { title: 'User', cell: (c) => c.username ?? h('span', { class: 'muted' }, 'anonymous') },
        { title: 'Address', cell: (c) => `${c.ip}:${c.port}` },
        { title: 'MQTT', cell: (c) => PROTO[c.proto_ver] || c.proto_ver },
        { title: 'Keepalive', num: true, cell: (c) => `${c.keepalive}s` },
        { title: 'Clean', cell: (c) => (c.clean_start ? 'yes' : 'no') },
        { title: 'Connected', cell: (c) => new Date(c.connected_at).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' }) },
        { title: 'Listener', cell: (c) => c.listener },
        { title: 'Shard', num: true, cell: (c) => c.shard },
        { title: 'Subs', num: true, cell: (c) => c.subscriptions },
        { title: 'Inflight', num: true, cell: (c) => c.inflight },
        { title: 'Queued', num: true, cell: (c) => c.queued },
        { title: '', cell: (c) => h('button', { class: 'danger small', testid: 'kick', onclick: () => kick(c.clientid) }, 'Kick') },
      ], (r.data || []).map((c) => ({ ...c, __key: c.clientid })), { empty: 'No client matches.', testid: 'clients' }),
      pager(r.meta, (p) => { page = p; load(); }));
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  async function kick(id) {
    try {
      await api.kick(id);
      msg.textContent = `Kicked ${id}.`;
    } catch (e) {
      msg.textContent = `Kick ${id}: ${e.message}`;
    }
    load();
  }
  let debounce = null;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { page = 1; load(); }, 250);
  });
  main.append(h('div', { class: 'toolbar' }, search), msg, h('section', { class: 'card' }, box));
  load();
  timer = setInterval(load, 2000);
  return { destroy: () => { clearInterval(timer); clearTimeout(debounce); } };
}
