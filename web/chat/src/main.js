// ringmq's chat demo: MQTT.js over WebSocket, back to the listener that served this page.
//
// Topics (one room = one topic tree):
//   chat/rooms/<room>/messages         JSON {nick, text, ts}, QoS 1, not retained
//   chat/rooms/<room>/presence/<nick>  JSON {nick, status: "online"|"offline", ts}, retained
// On joining, a client publishes its retained "online" marker; its will (registered in the
// CONNECT) replaces it with "offline" when the connection drops without a DISCONNECT (tab
// closed, network lost, keepalive expired). Leaving with the button publishes "offline" itself,
// since a clean DISCONNECT discards the will.
import mqtt from 'mqtt';
import './style.css';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// The listener's MQTT path: the broker answers /chat/config.json with it. `?path=` overrides
// it, `?broker=ws://host:port/path` points the page at another broker (development with
// `vite dev`; the page the broker serves may only connect to its own origin, by its CSP).
async function brokerUrl() {
  if (params.get('broker')) return params.get('broker');
  let path = params.get('path');
  if (!path) {
    try {
      const r = await fetch('/chat/config.json', { cache: 'no-store' });
      if (r.ok) path = (await r.json()).mqtt_path;
    } catch {
      // Served by something other than the broker: fall back to the default.
    }
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}${path || '/mqtt'}`;
}

const validName = (s) => s.length > 0 && s.length <= 32 && !/[/+#\u0000]/.test(s);

let client = null;
let state = null; // {nick, room, base}
const roster = new Map(); // nick -> {status, ts}

function presence(nick, status) {
  return JSON.stringify({ nick, status, ts: Date.now() });
}

function join(nick, room) {
  return brokerUrl().then((url) => {
    const base = `chat/rooms/${room}`;
    state = { nick, room, base };
    roster.clear();
    $('log').replaceChildren();
    $('room-name').textContent = room;
    $('me').textContent = nick;
    $('join').classList.add('hidden');
    $('chat').classList.remove('hidden');
    setStatus('connecting');
    const rand = Math.random().toString(16).slice(2, 10);
    client = mqtt.connect(url, {
      clientId: `chat-${nick.slice(0, 8)}-${rand}`,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 2000,
      will: {
        topic: `${base}/presence/${nick}`,
        payload: presence(nick, 'offline'),
        qos: 1,
        retain: true,
      },
    });
    client.on('connect', () => {
      setStatus('online');
      client.subscribe([`${base}/messages`, `${base}/presence/+`], { qos: 1 }, (err) => {
        if (err) return system(`subscribe failed: ${err.message}`);
        client.publish(`${base}/presence/${nick}`, presence(nick, 'online'), { qos: 1, retain: true });
      });
    });
    client.on('reconnect', () => setStatus('reconnecting'));
    client.on('offline', () => setStatus('offline'));
    client.on('error', (e) => system(`error: ${e.message}`));
    client.on('message', onMessage);
  });
}

function onMessage(topic, payload) {
  if (!state) return;
  let m;
  try {
    m = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return; // not one of ours
  }
  if (topic === `${state.base}/messages`) {
    if (typeof m.nick === 'string' && typeof m.text === 'string') message(m);
    return;
  }
  const prefix = `${state.base}/presence/`;
  if (topic.startsWith(prefix)) {
    const nick = topic.slice(prefix.length);
    const status = m.status === 'online' ? 'online' : 'offline';
    const before = roster.get(nick);
    roster.set(nick, { status, ts: m.ts });
    renderRoster();
    if (before && before.status !== status && nick !== state.nick) {
      system(`${nick} is ${status}`);
    } else if (!before && status === 'online' && nick !== state.nick) {
      system(`${nick} is here`);
    }
  }
}

function message(m) {
  const li = document.createElement('li');
  li.className = m.nick === state.nick ? 'msg mine' : 'msg';
  li.dataset.nick = m.nick;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = m.nick;
  const when = document.createElement('time');
  when.textContent = new Date(m.ts || Date.now()).toLocaleTimeString();
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = m.text;
  li.append(who, when, text);
  append(li);
}

function system(text) {
  const li = document.createElement('li');
  li.className = 'system';
  li.textContent = text;
  append(li);
}

function append(li) {
  const log = $('log');
  log.append(li);
  while (log.children.length > 500) log.firstElementChild.remove();
  li.scrollIntoView({ block: 'end' });
}

function renderRoster() {
  const items = [...roster.entries()]
    .sort(([a, x], [b, y]) => (x.status === y.status ? a.localeCompare(b) : x.status === 'online' ? -1 : 1))
    .map(([nick, p]) => {
      const li = document.createElement('li');
      li.className = p.status;
      li.dataset.nick = nick;
      li.dataset.status = p.status;
      li.textContent = nick === state.nick ? `${nick} (you)` : nick;
      if (p.status === 'offline' && p.ts) li.title = `last seen ${new Date(p.ts).toLocaleString()}`;
      return li;
    });
  $('roster').replaceChildren(...items);
}

function setStatus(s) {
  const el = $('status');
  el.textContent = s;
  el.dataset.state = s;
}

function leave() {
  if (!client || !state) return;
  const { base, nick } = state;
  const c = client;
  c.publish(`${base}/presence/${nick}`, presence(nick, 'offline'), { qos: 1, retain: true }, () => c.end());
  client = null;
  state = null;
  $('chat').classList.add('hidden');
  $('join').classList.remove('hidden');
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const nick = $('nick').value.trim();
  const room = $('room').value.trim();
  if (!validName(nick) || !validName(room)) {
    $('join-error').textContent = 'Names are 1 to 32 characters, without / + or #.';
    return;
  }
  $('join-error').textContent = '';
  sessionStorage.setItem('chat.nick', nick);
  sessionStorage.setItem('chat.room', room);
  join(nick, room).catch((err) => {
    $('join-error').textContent = String(err);
  });
});

$('send-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value;
  if (!text.trim() || !client || !state) return;
  client.publish(`${state.base}/messages`, JSON.stringify({ nick: state.nick, text, ts: Date.now() }), { qos: 1 });
  $('text').value = '';
});

$('leave').addEventListener('click', leave);

$('nick').value = params.get('nick') || sessionStorage.getItem('chat.nick') || '';
$('room').value = params.get('room') || sessionStorage.getItem('chat.room') || 'lobby';
