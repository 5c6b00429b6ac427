// Subscriptions, optionally of one client.
import { api } from '../api.js';
import { h, table, pager } from '../dom.js';

export function subscriptions(main) {
  let page = 1;
  const filter = h('input', { type: 'search', placeholder: 'Client id (exact)', testid: 'sub-client' });
  const box = h('div', {});
  const msg = h('p', { class: 'error', role: 'alert' });
  async function load() {
    try {
      const q = { page, limit: 50 };
      if (filter.value) q.clientid = filter.value;
      const r = await api.subscriptions(q);
      msg.textContent = '';
      box.replaceChildren(table([
        { title: 'Client id', cell: (s) => h('code', {}, s.clientid) },
        { title: 'Topic filter', cell: (s) => h('code', {}, s.topic) },
        { title: 'QoS', num: true, cell: (s) => s.qos },
        { title: 'Shard', num: true, cell: (s) => s.shard },
      ], r.data || [], { empty: 'No subscription.', testid: 'subscriptions' }),
      pager(r.meta, (p) => { page = p; load(); }));
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  filter.addEventListener('change', () => { page = 1; load(); });
  main.append(h('div', { class: 'toolbar' }, filter,
    h('button', { class: 'ghost', onclick: load }, 'Refresh')), msg, h('section', { class: 'card' }, box));
  load();
  return null;
}
