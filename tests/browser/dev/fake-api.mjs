// DEVELOPMENT ONLY: a stand-in for the broker's /api/v1 (per /work's API contract) serving
// web/dashboard/dist, to work on the dashboard before the real HTTP server exists. No test
// runs against it; tests/browser/dashboard.spec.mjs drives the real broker.
//   node tests/browser/dev/fake-api.mjs [port]   (default 18099; log in as admin / admin)
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { join, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dashboard', 'dist');
const port = Number(process.argv[2] || 18099);
const start = Date.now();
const shards = [0, 1].map((shard) => ({ shard, connections: 0, sessions: 0, subscriptions: 0, retained: 0,
  messages_in: 0, messages_out: 0, bytes_in: 0, bytes_out: 0, dropped: 0, drops: { queue_full: 0, no_match: 0 }, mesh_batches: 0, store_commits: 0 }));
let clients = Array.from({ length: 7 }, (_, i) => ({ clientid: `sensor-${i}`, username: i % 2 ? 'dev' : null, ip: '127.0.0.1',
  port: 50000 + i, proto_ver: i % 3 === 0 ? 5 : 4, keepalive: 60, clean_start: true, connected_at: Date.now() - i * 60000,
  shard: i % 2, listener: '127.0.0.1:1883', inflight: 0, queued: i, subscriptions: 1 }));
let retained = [{ topic: 'sensors/1/temp', qos: 1, payload_size: 4, payload: '21.5' }, { topic: 'chat/rooms/lobby/presence/alice', qos: 1, payload_size: 30, payload: '{"nick":"alice","status":"online"}' }];
let users = ['alice', 'bob'];
const topics = [{ prefix: 'sensors', messages_in: 0, bytes_in: 0, deliveries: 0 }, { prefix: 'chat', messages_in: 0, bytes_in: 0, deliveries: 0 }];
setInterval(() => {
  for (const s of shards) {
    const n = Math.floor(50 + Math.random() * 100);
    s.messages_in += n; s.messages_out += n * 2; s.bytes_in += n * 40; s.bytes_out += n * 80;
    s.connections = clients.filter((c) => c.shard === s.shard).length; s.sessions = s.connections; s.subscriptions = s.connections;
    if (Math.random() < 0.3) { s.dropped += 3; s.drops.queue_full += 3; }
    s.mesh_batches += 10; s.store_commits += 2;
  }
  topics[0].messages_in += 100; topics[0].deliveries += 200; topics[0].bytes_in += 4000; topics[1].messages_in += 3; topics[1].deliveries += 6;
}, 500);

const sum = () => Object.fromEntries(Object.keys(shards[0]).filter((k) => k !== 'shard').map((k) =>
  [k, k === 'drops' ? { queue_full: shards.reduce((a, s) => a + s.drops.queue_full, 0) } : shards.reduce((a, s) => a + s[k], 0)]));
const page = (all, u) => {
  const p = Number(u.searchParams.get('page') || 1); const l = Number(u.searchParams.get('limit') || 50);
  return { data: all.slice((p - 1) * l, p * l), meta: { page: p, limit: l, count: all.length } };
};

createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const json = (code, body) => { res.writeHead(code, { 'Content-Type': 'application/json' }); res.end(body === undefined ? '' : JSON.stringify(body)); };
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const p = u.pathname;
    if (p.startsWith('/api/v1/')) {
      const b = body ? JSON.parse(body) : {};
      if (p === '/api/v1/login') return b.username === 'admin' && b.password === 'admin' ? json(200, { token: 'tok', expires_in: 3600 }) : json(401, { error: 'bad user name or password' });
      if (req.headers.authorization !== 'Bearer tok') return json(401, { error: 'token required' });
      if (p === '/api/v1/stats') return json(200, { uptime_s: Math.floor((Date.now() - start) / 1000), shards, total: sum() });
      if (p === '/api/v1/stats/topics') return json(200, { data: topics });
      if (p === '/api/v1/listeners') return json(200, { data: [{ bind: '127.0.0.1:1883', protocol: 'mqtt', allow_anonymous: true, tls: false }, { bind: '127.0.0.1:8083', protocol: 'ws', allow_anonymous: true, tls: false, path: '/mqtt' }] });
      if (p === '/api/v1/clients' && req.method === 'GET') return json(200, page(clients.filter((c) => c.clientid.includes(u.searchParams.get('like') || '')), u));
      if (p.startsWith('/api/v1/clients/') && req.method === 'DELETE') { const id = decodeURIComponent(p.slice(16)); const had = clients.length; clients = clients.filter((c) => c.clientid !== id); return json(had === clients.length ? 404 : 204); }
      if (p === '/api/v1/subscriptions') return json(200, page(clients.map((c) => ({ clientid: c.clientid, topic: `sensors/${c.clientid}/#`, qos: 1, shard: c.shard })), u));
      if (p === '/api/v1/retained' && req.method === 'GET') return json(200, page(retained, u));
      if (p.startsWith('/api/v1/retained/') && req.method === 'DELETE') { const t = decodeURIComponent(p.slice(17)); retained = retained.filter((r) => r.topic !== t); return json(204); }
      if (p === '/api/v1/users' && req.method === 'GET') return json(200, { data: users.map((username) => ({ username })) });
      if (p === '/api/v1/users' && req.method === 'POST') { if (users.includes(b.username)) return json(409, { error: 'exists' }); users.push(b.username); return json(201, {}); }
      if (p.startsWith('/api/v1/users/') && req.method === 'PUT') return json(204);
      if (p.startsWith('/api/v1/users/') && req.method === 'DELETE') { users = users.filter((x) => x !== decodeURIComponent(p.slice(14))); return json(204); }
      if (p === '/api/v1/acl') return json(200, { file: '/etc/ringmq/acl', text: 'user alice\ntopic readwrite sensors/#\n\npattern read chat/%u/#\n', rules: 2 });
      if (p === '/api/v1/acl/reload') return json(204);
      return json(404, { error: 'no such route' });
    }
    let f = join(dist, p === '/' ? 'index.html' : p);
    if (!existsSync(f) || p.includes('..')) { if (extname(p)) { res.writeHead(404); return res.end(); } f = join(dist, 'index.html'); }
    const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
    res.writeHead(200, { 'Content-Type': types[extname(f)] || 'application/octet-stream' });
    res.end(readFileSync(f));
  });
}).listen(port, '127.0.0.1', () => console.log(`fake API on http://127.0.0.1:${port}/`));
