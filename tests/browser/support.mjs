// What the browser tests share: the real ringmq binary on free loopback ports, Debian's
// Chromium driven by playwright-core, and an output directory for screenshots.
//
// RINGMQ_BIN: the broker binary (default: target/debug/ringmq of this checkout).
// CHROMIUM: the browser (default /usr/bin/chromium; tests/run-all.sh installs Debian's).
// BROWSER_OUT: where screenshots go (default tests/browser/out/<test>/).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');
export const bin = process.env.RINGMQ_BIN || join(repo, 'target', 'debug', 'ringmq');

export function outDir(name) {
  const d = process.env.BROWSER_OUT ? join(process.env.BROWSER_OUT, name) : join(here, 'out', name);
  mkdirSync(d, { recursive: true });
  return d;
}

/// A loopback port nothing listens on now. The broker binds SO_REUSEPORT sockets, so it cannot
/// be handed port 0; the browser tests run one at a time (after cargo test), so the gap between
/// this probe and the broker's bind is only a risk with unrelated programs.
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export function run(args, { input } = {}) {
  return new Promise((res, rej) => {
    const p = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.once('error', rej);
    p.once('exit', (code) => (code === 0 ? res(out) : rej(new Error(`ringmq ${args.join(' ')}: exit ${code}\n${err}`))));
    p.stdin.end(input ?? '');
  });
}

function canConnect(port) {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

/// The broker with `config` (TOML text) in a fresh directory, ready once every port in
/// `waitPorts` accepts. `stop()` kills it (SIGTERM, then SIGKILL) and removes the directory.
/// `{dir}` in `config` is that directory. `prepare(flags, dir)` runs before the broker starts
/// (files it reads, `ringmq <flags> admin add-user ...`); `flags` name the broker's config and
/// data directory.
export async function startBroker(config, waitPorts, { extraArgs = [], prepare } = {}) {
  if (!existsSync(bin)) throw new Error(`no broker binary at ${bin} (cargo build, or set RINGMQ_BIN)`);
  const dir = mkdtempSync(join(tmpdir(), 'ringmq-browser-'));
  const cfg = join(dir, 'ringmq.toml');
  writeFileSync(cfg, config.replaceAll('{dir}', dir));
  const common = ['--config', cfg, '--data-dir', join(dir, 'data')];
  if (prepare) {
    try {
      await prepare(common, dir);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }
  const args = [...common, '--shards', '2', '--pin', 'false', '--log-level', 'warn', ...extraArgs];
  const child = spawn(bin, args, { stdio: ['ignore', 'inherit', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; process.stderr.write(d); });
  let exited = null;
  child.once('exit', (code, sig) => { exited = code ?? sig; });
  const deadline = Date.now() + 15000;
  for (const port of waitPorts) {
    while (!(await canConnect(port))) {
      if (exited !== null) throw new Error(`ringmq exited (${exited}) before listening:\n${log}`);
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`ringmq not listening on ${port}`); }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    dir,
    log: () => log,
    async stop() {
      if (exited === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/// Debian's Chromium, headless, quiet on the network (no background fetches: the test machine
/// has no internet). Playwright's launch() gives it a fresh temporary profile each time; each
/// `newContext()` is a separate cookie and storage jar.
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
