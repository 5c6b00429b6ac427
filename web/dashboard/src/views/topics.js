// Forwarding statistics per first topic level, with rates between two polls (every 2 s).
import { api } from '../api.js';
import { h, table, fmtNum, fmtBytes } from '../dom.js';

export function topics(main) {
  const box = h('div', {});
  const msg = h('p', { class: 'error', role: 'alert' });
  let prev = null;
  async function load() {
    try {
      const r = await api.topics();
      const at = Date.now();
      const before = new Map((prev?.data || []).map((d) => [d.prefix, d]));
      const dt = prev ? (at - prev.at) / 1000 : 0;
      const rate = (d, k) => {
        const p = before.get(d.prefix);
        return p && dt > 0 && d[k] >= p[k] ? (d[k] - p[k]) / dt : null;
      };
      const rows = [...(r.data || [])].sort((a, b) => b.messages_in - a.messages_in);
      box.replaceChildren(table([
        { title: 'Prefix', cell: (d) => h('code', {}, d.prefix) },
        { title: 'Messages in', num: true, cell: (d) => fmtNum(d.messages_in) },
        { title: 'In / s', num: true, cell: (d) => fmtNum(rate(d, 'messages_in')) },
        { title: 'Bytes in', num: true, cell: (d) => fmtBytes(d.bytes_in) },
        { title: 'Deliveries', num: true, cell: (d) => fmtNum(d.deliveries) },
        { title: 'Deliveries / s', num: true, cell: (d) => fmtNum(rate(d, 'deliveries')) },
        { title: 'Fan-out', num: true, cell: (d) => (d.messages_in ? (d.deliveries / d.messages_in).toFixed(2) : '–') },
      ], rows.map((d) => ({ ...d, __key: d.prefix })), { empty: 'No message published yet.', testid: 'topics' }));
      prev = { data: r.data || [], at };
      msg.textContent = '';
    } catch (e) {
      msg.textContent = e.message;
    }
  }
  main.append(h('p', { class: 'muted' }, 'Per first topic level (sensors/# counts as "sensors"): messages and bytes published, and deliveries to subscribers.'),
    msg, h('section', { class: 'card' }, box));
  load();
  const timer = setInterval(load, 2000);
  return { destroy: () => clearInterval(timer) };
}
