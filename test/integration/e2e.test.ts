// The newcomer's whole path, run the way the README tells them to: `npm start` in the project,
// subscribe in a real browser, confirm through the outbox page, `feuilleton send`, then find
// the installment everywhere and stop the server with SIGTERM. The data folder and port are
// moved aside through the environment so the developer's own data/ and port 3000 are untouched.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { PACKAGE_ROOT } from '../../src/config.ts';
import { launchChromium } from '../../src/render/chromium.ts';
import { Store } from '../../src/store/index.ts';
import { cleanEnv } from '../helpers/cli.ts';
import { freePort } from '../helpers/net.ts';

let dataDir: string;
let env: NodeJS.ProcessEnv;
let base: string;
let server: ChildProcess;
let output = '';
let closed: Promise<unknown>;
let browser: Browser;
let stopped = false;

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'feuilleton-e2e-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // None of the developer's FEUILLETON_* settings: only the ones that move data and port aside.
  env = { ...cleanEnv(), FEUILLETON_DATA_DIR: dataDir, FEUILLETON_PORT: String(port), FEUILLETON_BASE_URL: `${base}/` };
  // Its own process group, so SIGTERM reaches npm and the server as Ctrl-C or systemd would.
  server = spawn('npm', ['start'], { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  closed = new Promise((resolve) => server.stdout!.once('close', resolve));
  server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  // `npm start` builds first; wait for the line that prints the URL.
  const deadline = Date.now() + 120_000;
  while (!output.includes(`${base}/`)) {
    if (server.exitCode !== null) throw new Error(`npm start exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`npm start did not print its URL:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  mkdirSync(path.join(PACKAGE_ROOT, 'test-output'), { recursive: true });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (server?.pid && !stopped) process.kill(-server.pid, 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

const cli = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(PACKAGE_ROOT, 'dist', 'cli.js'), ...args], {
    cwd: PACKAGE_ROOT,
    env,
    encoding: 'utf8',
  });

test('npm start → subscribe in Chromium → confirm via the outbox → send → outbox, feed, page → SIGTERM', async () => {
  assert.match(output, /no mail server: emails go to .*\/outbox/);
  const page = await browser.newPage();
  page.setDefaultTimeout(60_000);

  await page.goto(`${base}/`);
  assert.equal(await page.locator('h1').first().textContent(), "The Lamplighter's Ledger");
  await page.fill('#email', 'newcomer@example.org');
  await page.click('button[type=submit]');
  await page.waitForURL(/check-inbox/);

  // The confirmation is sent after the reply, as a reader would find it: refresh until it is there.
  const deadline = Date.now() + 30_000;
  for (;;) {
    await page.goto(`${base}/outbox`);
    if (await page.locator('text=/confirm/i').count()) break;
    assert.ok(Date.now() < deadline, `no confirmation email in the outbox after 30 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await page.click('text=/confirm/i');
  await page.click('ul.links a[href*="/confirm"]');
  await page.waitForURL(/\/confirm/);
  await page.click('button[type=submit]');
  await page.waitForLoadState();
  assert.match((await page.textContent('main')) ?? '', /subscribed|confirmed|welcome/i);

  const send = cli('send');
  assert.equal(send.status, 0, `${send.stdout}\n${send.stderr}`);
  assert.match(send.stdout, /sent\D+1\b/i);

  await page.goto(`${base}/outbox`);
  const subjects = await page.locator('tbody tr td:nth-child(3)').allTextContents();
  assert.ok(
    subjects.some((s) => /Part 1/.test(s)),
    `installment in the outbox: ${subjects.join(' | ')}`,
  );

  const atom = await (await fetch(`${base}/atom.xml`)).text();
  assert.match(atom, new RegExp(`<link href="${base}/installments/1"`));
  assert.equal((atom.match(/<entry>/g) ?? []).length, 1);

  const installment = await fetch(`${base}/installments/1`);
  assert.equal(installment.status, 200);
  assert.match(await installment.text(), /The ledger hung on a nail/);
  assert.equal((await fetch(`${base}/installments/2`)).status, 404);

  // npm itself dies of the signal; the server's own output, which outlives it on the same
  // pipe, tells whether it shut down cleanly.
  process.kill(-server.pid!, 'SIGTERM');
  await closed;
  stopped = true;
  assert.match(output, /SIGTERM received: shutting down/);
  assert.match(output, /stopped cleanly: database closed/, output);
  assert.equal(
    existsSync(path.join(dataDir, 'feuilleton.db-wal')),
    false,
    'the last connection closed and checkpointed the WAL',
  );

  // The database was closed cleanly: the subscriber and the delivery are there.
  const store = Store.open(path.join(dataDir, 'feuilleton.db'));
  try {
    const sub = store.subscribers.byEmail('newcomer@example.org');
    assert.equal(sub?.status, 'active');
    assert.equal(store.deliveries.countSent(1), 1);
  } finally {
    store.close();
  }
});
