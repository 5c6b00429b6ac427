// The chat demo in a real browser against the real broker: a ws listener on a free port
// serves /chat; two pages (separate browser contexts) join one room under different
// nicknames, see each other's presence, talk both ways; one tab closes and the other sees it
// go offline through its will; a page served over wss (TLS, custom path) connects back with
// wss and talks to a page of the ws listener. Screenshots in out/chat/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join as pathJoin } from 'node:path';
import { execFileSync } from 'node:child_process';
import { freePort, startBroker, launchBrowser, outDir } from './support.mjs';

let broker;
let browser;
let port;
let tlsPort;
const shots = outDir('chat');

before(async () => {
  port = await freePort();
  tlsPort = await freePort();
  broker = await startBroker(
    [
      '[[listener]]', `bind = "127.0.0.1:${port}"`, 'protocol = "ws"', 'allow_anonymous = true',
      '[[listener]]', `bind = "127.0.0.1:${tlsPort}"`, 'protocol = "wss"', 'path = "/ws/mqtt"',
      'allow_anonymous = true', 'certfile = "{dir}/server.pem"', 'keyfile = "{dir}/server.key"', '',
    ].join('\n'),
    [port, tlsPort],
    {
      // A self-signed certificate for 127.0.0.1 (the browser context ignores its issuer).
      prepare: async (_flags, dir) => execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048',
        '-nodes', '-keyout', `${dir}/server.key`, '-out', `${dir}/server.pem`, '-days', '2',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' }),
    },
  );
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

test('the listener serves the chat page, its config and 404 around it', async () => {
  const base = `http://127.0.0.1:${port}`;
  const page = await fetch(`${base}/chat`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const html = await page.text();
  assert.match(html, /ringmq chat/);
  const script = html.match(/src="(\/chat\/assets\/[^"]+\.js)"/);
  assert.ok(script, 'the page names its script');
  const js = await fetch(base + script[1]);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('cache-control'), /immutable/);
  assert.ok((await js.arrayBuffer()).byteLength > 10000);
  const cfg = await fetch(`${base}/chat/config.json`);
  assert.deepEqual(await cfg.json(), { mqtt_path: '/mqtt' });
  assert.equal((await fetch(`${base}/chat/assets/none.js`)).status, 404);
  assert.equal((await fetch(`${base}/elsewhere`)).status, 404);
  // The MQTT path without an upgrade is still a bad upgrade, not a page.
  assert.equal((await fetch(`${base}/mqtt`)).status, 400);
});

async function join(nick, room, url = `http://127.0.0.1:${port}/chat`, sockets = []) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 }, ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('pageerror', (e) => console.error(`[${nick}] page error: ${e.message}`));
  await page.goto(url);
  await page.getByTestId('nick').fill(nick);
  await page.getByTestId('room').fill(room);
  await page.getByTestId('join').click();
  await page.locator('[data-testid=status][data-state=online]').waitFor();
  return { context, page };
}

const roster = (page, nick, status) =>
  page.locator(`[data-testid=roster] li[data-nick="${nick}"][data-status="${status}"]`);
const said = (page, nick, text) =>
  page.locator(`[data-testid=log] li.msg[data-nick="${nick}"]`, { hasText: text });

test('two pages chat in one room and see each other come and go', async () => {
  const room = `r${Date.now().toString(36)}`;
  const alice = await join('alice', room);
  const bob = await join('bob', room);

  // Presence both ways: bob learns of alice from her retained marker, alice of bob live.
  await roster(alice.page, 'bob', 'online').waitFor({ timeout: 10000 });
  await roster(bob.page, 'alice', 'online').waitFor({ timeout: 10000 });

  await alice.page.getByTestId('text').fill('hello bob, this is alice');
  await alice.page.getByTestId('send').click();
  await said(bob.page, 'alice', 'hello bob, this is alice').waitFor({ timeout: 10000 });

  await bob.page.getByTestId('text').fill('hi alice <b>not bold</b>');
  await bob.page.keyboard.press('Enter');
  await said(alice.page, 'bob', 'hi alice <b>not bold</b>').waitFor({ timeout: 10000 });
  // Text stays text.
  assert.equal(await alice.page.locator('[data-testid=log] b').count(), 0);
  // Each sees its own message echoed once, and the other's once.
  assert.equal(await said(alice.page, 'alice', 'hello bob').count(), 1);
  assert.equal(await said(bob.page, 'bob', 'hi alice').count(), 1);

  await alice.page.screenshot({ path: pathJoin(shots, 'alice-talking.png') });
  await bob.page.screenshot({ path: pathJoin(shots, 'bob-talking.png') });

  // Bob's tab goes away without a DISCONNECT: the broker publishes his will.
  await bob.context.close();
  await roster(alice.page, 'bob', 'offline').waitFor({ timeout: 15000 });
  await alice.page.locator('[data-testid=log] li.system', { hasText: 'bob is offline' }).waitFor();
  await alice.page.screenshot({ path: pathJoin(shots, 'alice-after-bob-left.png') });

  // A newcomer sees the retained markers: alice online, bob offline.
  const carol = await join('carol', room);
  await roster(carol.page, 'alice', 'online').waitFor({ timeout: 10000 });
  await roster(carol.page, 'bob', 'offline').waitFor({ timeout: 10000 });
  await carol.page.screenshot({ path: pathJoin(shots, 'carol-joins.png') });

  // Leaving with the button marks alice offline too (a clean DISCONNECT has no will).
  await alice.page.getByTestId('leave').click();
  await roster(carol.page, 'alice', 'offline').waitFor({ timeout: 10000 });
  await carol.context.close();
  await alice.context.close();
});

test('over wss the page comes over HTTPS and connects back with wss at the listener\'s path', async () => {
  const room = `tls${Date.now().toString(36)}`;
  const sockets = [];
  const dave = await join('dave', room, `https://127.0.0.1:${tlsPort}/chat/`, sockets);
  assert.deepEqual(sockets, [`wss://127.0.0.1:${tlsPort}/ws/mqtt`]);
  const erin = await join('erin', room, `http://127.0.0.1:${port}/chat`);
  // Both listeners share one broker: a wss page and a ws page talk.
  await roster(dave.page, 'erin', 'online').waitFor({ timeout: 10000 });
  await erin.page.getByTestId('text').fill('across listeners');
  await erin.page.getByTestId('send').click();
  await said(dave.page, 'erin', 'across listeners').waitFor({ timeout: 10000 });
  const cfg = await dave.page.evaluate(async () => (await fetch('/chat/config.json')).json());
  assert.deepEqual(cfg, { mqtt_path: '/ws/mqtt' });
  await dave.page.screenshot({ path: pathJoin(shots, 'dave-over-wss.png') });
  await dave.context.close();
  await erin.context.close();
});
