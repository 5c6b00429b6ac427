// The dashboard in a real browser against the real broker: an admin user made with
// `ringmq admin add-user --password-stdin`, the login page (a wrong password refused, the right
// one admitted), a connecting MQTT client (MQTT.js in Node) appearing in the clients list, a
// kick that disconnects it, the overview's charts updating while it publishes, a persistent
// session listed offline after its client left, retained
// messages (list, delete), MQTT users (add, change password, delete), the ACL (view, reload)
// and the per-prefix statistics. Screenshots in out/dashboard/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join as pathJoin } from 'node:path';
import mqtt from 'mqtt';
import { freePort, startBroker, launchBrowser, outDir, run } from './support.mjs';

const ADMIN = 'admin';
const ADMIN_PW = 'correct horse battery';
let broker;
let browser;
let httpPort;
let mqttPort;
let page;
const shots = outDir('dashboard');
const shot = (name) => page.screenshot({ path: pathJoin(shots, `${name}.png`), fullPage: true });
const base = () => `http://127.0.0.1:${httpPort}`;

before(async () => {
  httpPort = await freePort();
  mqttPort = await freePort();
  broker = await startBroker(
    [
      'password_file = "{dir}/passwd"',
      'acl_file = "{dir}/acl"',
      '[[listener]]',
      `bind = "127.0.0.1:${mqttPort}"`,
      'protocol = "mqtt"',
      'allow_anonymous = true',
      '[http]',
      `bind = "127.0.0.1:${httpPort}"`,
      'admin_users_file = "{dir}/admin-users"',
      '',
    ].join('\n'),
    [mqttPort, httpPort],
    {
      prepare: async (flags, dir) => {
        writeFileSync(pathJoin(dir, 'passwd'), '');
        writeFileSync(pathJoin(dir, 'acl'), '# every client, every topic\npattern readwrite #\n');
        await run([...flags, 'admin', 'add-user', ADMIN, '--password-stdin'], { input: `${ADMIN_PW}\n` });
      },
    },
  );
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

function connectClient(clientId) {
  return new Promise((res, rej) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000,
    });
    c.once('connect', () => res(c));
    c.once('error', rej);
  });
}

test('the API refuses calls without a token', async () => {
  const r = await fetch(`${base()}/api/v1/stats`);
  assert.equal(r.status, 401);
  assert.ok((await r.json()).error);
});

test('login: a wrong password is refused, the right one opens the overview', async () => {
  await page.goto(base());
  await page.getByTestId('login').waitFor();
  await shot('01-login');
  await page.getByTestId('username').fill(ADMIN);
  await page.getByTestId('password').fill('wrong');
  await page.getByTestId('login').click();
  await page.getByTestId('login-error').filter({ hasText: /./ }).waitFor();
  await page.getByTestId('password').fill(ADMIN_PW);
  await page.getByTestId('login').click();
  await page.getByTestId('tile-connections').waitFor();
  assert.ok(await page.evaluate(() => sessionStorage.getItem('ringmq.token')), 'token kept in sessionStorage');
});

// The MQTT client the next two tests watch: connected once, publishing 200 messages/s.
let client = null;
let pump = null;
const clientId = `dash-client-${Date.now().toString(36)}`;
async function publishingClient() {
  if (client) return client;
  client = await connectClient(clientId);
  await new Promise((r) => client.subscribe('sensors/#', { qos: 0 }, r));
  let n = 0;
  pump = setInterval(() => {
    for (let i = 0; i < 20; i += 1) { client.publish(`sensors/dash/${i % 4}`, `v${n}`); n += 1; }
  }, 100);
  client.publish('sensors/dash/retained', '21.5', { retain: true, qos: 1 });
  return client;
}
after(() => {
  clearInterval(pump);
  client?.end(true);
});

test('a connecting client is counted on the overview', async () => {
  await publishingClient();
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=tile-connections] .tile-value')?.textContent) >= 1,
    null, { timeout: 10000 });
});

test('the charts update while the client publishes; it appears among the clients and a kick disconnects it', async () => {
  const c = await publishingClient();
  try {
    // The rate chart is redrawn with new points and messages in goes up.
    const points = async () => Number(await page.getByTestId('chart-rate').getAttribute('data-points'));
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=chart-rate]')?.dataset.points) >= 3);
    const chartBefore = await page.getByTestId('chart-rate').screenshot();
    const inBefore = await page.getByTestId('tile-messages_in').innerText();
    const p0 = await points();
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid=chart-rate]').dataset.points) > n + 1, p0);
    const chartAfter = await page.getByTestId('chart-rate').screenshot();
    assert.notDeepEqual(chartAfter, chartBefore, 'the messages/s chart was redrawn with new points');
    assert.notEqual(await page.getByTestId('tile-messages_in').innerText(), inBefore, 'messages in went up');
    await shot('02-overview-live');

    // Clients: search finds it, kick disconnects it.
    await page.getByTestId('nav-clients').click();
    await page.getByTestId('client-search').fill(clientId.slice(0, 12));
    const row = page.locator(`[data-testid=clients] tr[data-key="${clientId}"]`);
    await row.waitFor({ timeout: 10000 });
    await shot('03-clients');
    const closed = new Promise((r) => c.once('close', r));
    const reason = new Promise((r) => c.once('disconnect', (p) => r(p.reasonCode)));
    await row.getByTestId('kick').click();
    await closed;
    assert.equal(await Promise.race([reason, new Promise((r) => setTimeout(() => r('none'), 1000))]), 0x98,
      'DISCONNECT 0x98 (administrative action)');
    await row.waitFor({ state: 'detached', timeout: 10000 });
    await page.getByTestId('clients-status').filter({ hasText: `Kicked ${clientId}` }).waitFor();
    await shot('04-kicked');
  } finally {
    clearInterval(pump);
  }
});

test('a persistent session stays listed, offline, after its client leaves', async () => {
  const id = `dash-device-${Date.now().toString(36)}`;
  const c = await new Promise((res, rej) => {
    const cl = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: id, protocolVersion: 5, clean: false, reconnectPeriod: 0,
      properties: { sessionExpiryInterval: 300 },
    });
    cl.once('connect', () => res(cl));
    cl.once('error', rej);
  });
  await new Promise((r) => c.subscribe('devices/+/cmd', { qos: 1 }, r));
  await new Promise((r) => c.end(false, r));
  await page.getByTestId('nav-sessions').click();
  await page.getByTestId('session-search').fill(id);
  const row = page.locator(`[data-testid=sessions] tr[data-key="${id}"]`);
  await row.filter({ hasText: 'offline' }).waitFor({ timeout: 10000 });
  await shot('05-sessions');
});

test('retained messages are listed and deleted', async () => {
  await page.getByTestId('nav-retained').click();
  // The broker's own $SYS tree is retained too and sorts first: search for ours, as a user would.
  await page.getByTestId('retained-search').fill('sensors/dash');
  const row = page.locator('[data-testid=retained] tr[data-key="sensors/dash/retained"]');
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.innerText(), /21\.5/);
  await shot('06-retained');
  await row.getByTestId('delete-retained').click();
  await row.waitFor({ state: 'detached', timeout: 10000 });
});

test('MQTT users are added, re-passworded and deleted, and the new user can connect', async () => {
  await page.getByTestId('nav-users').click();
  await page.getByTestId('new-user').fill('carol');
  await page.getByTestId('new-password').fill('carol-pw-1');
  await page.getByTestId('add-user').click();
  const row = page.locator('[data-testid=users] tr[data-key="carol"]');
  await row.waitFor({ timeout: 10000 });
  await shot('07-users');
  const c = await new Promise((res, rej) => {
    const cl = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { username: 'carol', password: 'carol-pw-1', reconnectPeriod: 0 });
    cl.once('connect', () => res(cl));
    cl.once('error', rej);
  });
  c.end(true);
  await row.locator('input[type=password]').fill('carol-pw-2');
  await row.getByRole('button', { name: 'Set' }).click();
  await page.getByTestId('users-status').filter({ hasText: 'Password of carol changed' }).waitFor();
  await row.getByTestId('delete-user').click();
  await row.waitFor({ state: 'detached', timeout: 10000 });
});

test('the ACL is shown and reloaded', async () => {
  await page.getByTestId('nav-acl').click();
  await page.getByTestId('acl-text').filter({ hasText: 'pattern readwrite #' }).waitFor();
  await page.getByTestId('acl-reload').click();
  await page.getByTestId('acl-status').filter({ hasText: 'Reloaded' }).waitFor();
  await shot('08-acl');
});

test('forwarding statistics list the prefix the client published under', async () => {
  await page.getByTestId('nav-topics').click();
  const row = page.locator('[data-testid=topics] tr[data-key="sensors"]');
  await row.waitFor({ timeout: 10000 });
  const cells = await row.locator('td').allInnerTexts();
  assert.ok(Number(cells[1].replace(/\D/g, '')) > 0, `messages in counted: ${cells}`);
  assert.ok(Number(cells[4].replace(/\D/g, '')) > 0, `deliveries counted: ${cells}`);
  await shot('09-topics');
});
