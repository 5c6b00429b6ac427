// The live statistics: one poll of /api/v1/stats per second while logged in, whatever page
// is open, so the charts have history when the overview is shown. Counters are totals since
// start; rates are the difference of two polls over the time between them.
import { api } from './api.js';

export const POINTS = 180; // three minutes at one poll a second
const PERIOD_MS = 1000;

export const history = {
  t: [], // unix seconds
  in: [], out: [], // messages/s, all shards
  conns: [],
  shardLoad: [], // [shard][i]: messages/s in + out
  shardDrops: [], // [shard][i]: drops/s
};
export let latest = null;
let previous = null;
let timer = null;
const listeners = new Set();

export function onStats(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

function push(arr, v) {
  arr.push(v);
  if (arr.length > POINTS) arr.shift();
}

function rate(cur, prev, key, dt) {
  if (!prev || dt <= 0) return null;
  const d = (cur[key] ?? 0) - (prev[key] ?? 0);
  // A restarted broker's counters start again from zero: no negative rate.
  return d < 0 ? null : d / dt;
}

function record(s, at) {
  const dt = previous ? (at - previous.at) / 1000 : 0;
  const p = previous?.stats;
  push(history.t, at / 1000);
  push(history.in, rate(s.total, p?.total, 'messages_in', dt));
  push(history.out, rate(s.total, p?.total, 'messages_out', dt));
  push(history.conns, s.total.connections ?? null);
  s.shards.forEach((sh, i) => {
    if (!history.shardLoad[i]) {
      // A shard seen for the first time gets an empty past, aligned with the time axis.
      history.shardLoad[i] = new Array(history.t.length - 1).fill(null);
      history.shardDrops[i] = new Array(history.t.length - 1).fill(null);
    }
    const ps = p?.shards?.[i];
    const din = rate(sh, ps, 'messages_in', dt);
    const dout = rate(sh, ps, 'messages_out', dt);
    push(history.shardLoad[i], din === null || dout === null ? null : din + dout);
    push(history.shardDrops[i], rate(sh, ps, 'dropped', dt));
  });
  previous = { stats: s, at };
  latest = s;
}

async function tick() {
  try {
    const s = await api.stats();
    record(s, Date.now());
    for (const f of listeners) f(s, null);
  } catch (e) {
    for (const f of listeners) f(null, e);
  }
}

export function startPolling() {
  if (timer) return;
  tick();
  timer = setInterval(tick, PERIOD_MS);
}

export function stopPolling() {
  clearInterval(timer);
  timer = null;
  previous = null;
  latest = null;
  for (const k of Object.keys(history)) history[k] = [];
}
