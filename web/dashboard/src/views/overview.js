// Overview: totals, live charts (messages/s in and out, connections, per-shard load and drops),
// the shards' figures and drop reasons, and the listeners.
import { api } from '../api.js';
import { h, table, fmtNum, fmtBytes, fmtDuration } from '../dom.js';
import { history, latest, onStats } from '../stats.js';
import { lineChart } from '../charts.js';

const TILES = [
  ['connections', 'Connections'], ['sessions', 'Sessions'], ['subscriptions', 'Subscriptions'],
  ['retained', 'Retained'], ['messages_in', 'Messages in'], ['messages_out', 'Messages out'],
  ['bytes_in', 'Bytes in', fmtBytes], ['bytes_out', 'Bytes out', fmtBytes], ['dropped', 'Dropped'],
];

// WebSocket listeners serve the chat demo at /chat; a wildcard bind is reached through the host
// this dashboard was loaded from.
function chatLink(l) {
  if (l.protocol !== 'ws' && l.protocol !== 'wss') return '';
  const m = /^(.*):(\d+)$/.exec(l.bind || '');
  if (!m) return '';
  let host = m[1];
  if (host === '0.0.0.0' || host === '[::]' || host === '::') host = location.hostname;
  const scheme = l.protocol === 'wss' ? 'https' : 'http';
  return h('a', { href: `${scheme}://${host}:${m[2]}/chat`, target: '_blank', rel: 'noopener' }, 'chat demo');
}

export function overview(main) {
  const tiles = h('div', { class: 'tiles', testid: 'tiles' });
  const boxes = {
    rate: h('div', { class: 'chart', testid: 'chart-rate' }),
    conns: h('div', { class: 'chart', testid: 'chart-connections' }),
    load: h('div', { class: 'chart', testid: 'chart-shard-load' }),
    drops: h('div', { class: 'chart', testid: 'chart-shard-drops' }),
  };
  const shardsBox = h('div', {});
  const listenersBox = h('div', {});
  const uptime = h('span', { class: 'muted', testid: 'uptime' });
  const status = h('p', { class: 'error', role: 'alert' });
  main.append(
    h('p', { class: 'muted' }, 'Polled every second; rates are the change between two polls. Up ', uptime),
    status, tiles,
    h('div', { class: 'charts' },
      h('section', { class: 'card' }, h('h2', {}, 'Messages / s'), boxes.rate),
      h('section', { class: 'card' }, h('h2', {}, 'Connections'), boxes.conns),
      h('section', { class: 'card' }, h('h2', {}, 'Per-shard load (messages / s in + out)'), boxes.load),
      h('section', { class: 'card' }, h('h2', {}, 'Per-shard drops / s'), boxes.drops)),
    h('section', { class: 'card' }, h('h2', {}, 'Shards'), shardsBox),
    h('section', { class: 'card' }, h('h2', {}, 'Listeners'), listenersBox),
  );

  let charts = null;
  function makeCharts(nShards) {
    const shards = Array.from({ length: nShards }, (_, i) => `shard ${i}`);
    charts = {
      rate: lineChart(boxes.rate, { series: ['in', 'out'], yLabel: 'msg/s' }),
      conns: lineChart(boxes.conns, { series: ['connections'] }),
      load: lineChart(boxes.load, { series: shards, yLabel: 'msg/s' }),
      drops: lineChart(boxes.drops, { series: shards, yLabel: 'drops/s' }),
      nShards,
    };
  }

  function update(s, err) {
    if (err) {
      status.textContent = `Statistics unavailable: ${err.message}`;
      return;
    }
    status.textContent = '';
    uptime.textContent = fmtDuration(s.uptime_s ?? 0);
    tiles.replaceChildren(...TILES.map(([k, title, f]) => h('div', { class: 'tile', testid: `tile-${k}` },
      h('div', { class: 'tile-value' }, (f || fmtNum)(s.total[k])), h('div', { class: 'tile-title' }, title))));
    if (!charts || charts.nShards !== s.shards.length) {
      if (charts) for (const c of Object.values(charts)) c.destroy?.();
      makeCharts(s.shards.length);
    }
    const t = history.t;
    charts.rate.set([t, history.in, history.out]);
    charts.conns.set([t, history.conns]);
    charts.load.set([t, ...s.shards.map((_, i) => history.shardLoad[i] || [])]);
    charts.drops.set([t, ...s.shards.map((_, i) => history.shardDrops[i] || [])]);
    for (const b of Object.values(boxes)) b.dataset.points = String(t.length);
    shardsBox.replaceChildren(table([
      { title: 'Shard', cell: (r) => r.shard },
      { title: 'Connections', num: true, cell: (r) => fmtNum(r.connections) },
      { title: 'Sessions', num: true, cell: (r) => fmtNum(r.sessions) },
      { title: 'Subscriptions', num: true, cell: (r) => fmtNum(r.subscriptions) },
      { title: 'Msgs in', num: true, cell: (r) => fmtNum(r.messages_in) },
      { title: 'Msgs out', num: true, cell: (r) => fmtNum(r.messages_out) },
      { title: 'Mesh batches', num: true, cell: (r) => fmtNum(r.mesh_batches) },
      { title: 'Store commits', num: true, cell: (r) => fmtNum(r.store_commits) },
      { title: 'Dropped', num: true, cell: (r) => fmtNum(r.dropped) },
      { title: 'Drops by reason', cell: (r) => Object.entries(r.drops || {}).filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}: ${n}`).join(', ') || '–' },
    ], s.shards, { testid: 'shards' }));
  }

  const off = onStats(update);
  if (latest) update(latest, null);
  api.listeners().then((r) => listenersBox.replaceChildren(table([
    { title: 'Bind', cell: (l) => l.bind },
    { title: 'Protocol', cell: (l) => l.protocol },
    { title: 'TLS', cell: (l) => (l.tls ? 'yes' : 'no') },
    { title: 'Path', cell: (l) => l.path || '' },
    { title: 'Anonymous', cell: (l) => (l.allow_anonymous ? 'allowed' : 'refused') },
    { title: '', cell: chatLink },
  ], r.data || []))).catch((e) => listenersBox.replaceChildren(h('p', { class: 'error' }, e.message)));

  return {
    destroy() {
      off();
      if (charts) for (const c of Object.values(charts)) c.destroy?.();
    },
  };
}
