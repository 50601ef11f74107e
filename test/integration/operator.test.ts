// The operator's path from `init` to a running site, in a folder of its own, run the way the
// README says: init with the author's identity, `npm install` (which links this checkout,
// offline), `npm start` on a port of their choosing, a reader subscribing and confirming
// from the link in the outbox, `npx feuilleton send`. Plus what serve says about ports.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { stringify } from 'yaml';
import { loadConfig, PACKAGE_ROOT } from '../../src/config.ts';
import { cleanEnv, runCli, spawnCli, type CliProcess } from '../helpers/cli.ts';
import { Client } from '../helpers/form-client.ts';
import { freePort } from '../helpers/net.ts';
import { SAMPLE_STORY } from '../helpers/project.ts';

const work = mkdtempSync(path.join(tmpdir(), 'feuilleton-operator-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The outbox's messages, parsed, oldest first. */
async function outbox(dir: string) {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.eml'))
    .sort();
  return Promise.all(files.map(async (f) => simpleParser(readFileSync(path.join(dir, f)))));
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  output: () => string,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms / 1000} s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const linkIn = (text: string, route: string): string => {
  const m = new RegExp(`https?://[^\\s"<>\\]]+${route}[^\\s"<>\\]]*`).exec(text);
  assert.ok(m, `a ${route} link in:\n${text}`);
  return m[0];
};

/** Subscribes through the form and confirms from the link the outbox holds; returns that link. */
async function subscribeAndConfirm(
  base: string,
  outboxDir: string,
  email: string,
  output: () => string,
): Promise<string> {
  const client = new Client(base);
  const r = await client.subscribe(email);
  assert.equal(r.res.status, 303, r.body);
  const mail = await waitFor(
    'the confirmation email',
    async () => (await outbox(outboxDir).catch(() => [])).find((m) => /confirm/i.test(m.subject ?? '')),
    output,
  );
  const confirm = linkIn(mail.text ?? '', '/confirm');
  const page = await fetch(confirm);
  assert.equal(page.status, 200, `the confirmation link ${confirm} reaches the server`);
  const token = new URL(confirm).searchParams.get('token')!;
  const form = await client.get(`/confirm?token=${encodeURIComponent(token)}`);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1];
  const done = await client.post('/confirm', { token, ...(csrf ? { _csrf: csrf } : {}) });
  assert.ok(done.res.status < 400, done.body);
  return confirm;
}

describe('init → add a story → npm install → npm start on another port → subscribe → npx feuilleton send', () => {
  const project = path.join(work, 'salt-road');
  const storyFile = path.join(work, 'the-salt-road.md');
  let port: number;
  let server: ChildProcess | undefined;
  let output = '';
  let env: NodeJS.ProcessEnv;

  before(async () => {
    // The project's node_modules/.bin/feuilleton is this checkout's dist/cli.js: build it if stale.
    const build = spawnSync(process.execPath, [path.join(PACKAGE_ROOT, 'scripts', 'build-if-stale.mjs')], {
      cwd: PACKAGE_ROOT,
      encoding: 'utf8',
    });
    assert.equal(build.status, 0, build.stdout + build.stderr);
    port = await freePort();
    // No network but 127.0.0.1: npm must link the checkout without asking any registry.
    env = {
      ...cleanEnv(),
      npm_config_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    };
  });
  after(() => {
    if (server?.pid && server.exitCode === null) process.kill(-server.pid, 'SIGKILL');
  });

  test("init takes the identity from its options, and never keeps the sample's", async () => {
    writeFileSync(
      storyFile,
      '---\ntitle: The Salt Road\n---\n\n# One\n\nThe road ran white to the sea.\n\n# Two\n\nAt the end of it, the salt pans.\n',
    );
    const r = await runCli(
      [
        'init',
        project,
        '--story',
        storyFile,
        '--title',
        'The Salt Road',
        '--author',
        'Ines Varga',
        '--from',
        'The Salt Road <serial@salt-road.example.net>',
        '--postal-address',
        '4 Quay Lane, Saltby',
      ],
      work,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /npm install[\s\S]*npm start[\s\S]*npx feuilleton/);
    const config = loadConfig({ cwd: project, env: {} });
    assert.equal(config.story.title, 'The Salt Road');
    assert.equal(config.story.author, 'Ines Varga');
    assert.equal(config.mail.from, 'The Salt Road <serial@salt-road.example.net>');
    assert.equal(config.mail.postalAddress, '4 Quay Lane, Saltby');
    assert.equal(config.paths.story, path.join(project, 'story', 'the-salt-road.md'));
    assert.equal(config.baseUrlFollowsServer, true, 'links follow the port the server listens on');
    const text = readFileSync(path.join(project, 'feuilleton.yaml'), 'utf8');
    assert.doesNotMatch(text, /Lamplighter|Ropewalk|Skelby/);
    const pkg = JSON.parse(readFileSync(path.join(project, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      scripts: Record<string, string>;
    };
    assert.equal(
      pkg.dependencies.feuilleton,
      `file:${PACKAGE_ROOT}`,
      'this checkout by path, never a registry package',
    );
    assert.equal(pkg.scripts.start, 'feuilleton serve');
  });

  test('without --from and --postal-address, check flags both; nothing of the sample remains', async () => {
    const bare = path.join(work, 'bare');
    const made = await runCli(['init', bare], work);
    assert.equal(made.code, 0, made.stderr);
    const text = readFileSync(path.join(bare, 'feuilleton.yaml'), 'utf8');
    assert.doesNotMatch(text, /^\s*from: .*Lamplighter/m);
    assert.doesNotMatch(text, /Ropewalk|Skelby/);
    const check = await runCli(['check'], bare);
    assert.match(check.stdout, /mail\.from "Feuilleton <serial@localhost>" sends from localhost/);
    assert.match(check.stdout, /mail\.postalAddress is empty/);
    const bad = await runCli(['init', path.join(work, 'bad'), '--from', 'not an address'], work);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      'feuilleton: --from "not an address" is not an address; write it as "My Serial <serial@example.org>" or serial@example.org\n',
    );
  });

  test('npm install links the checkout; npm start serves on FEUILLETON_PORT with links on that port; npx feuilleton send delivers', async () => {
    const install = spawnSync('npm', ['install'], { cwd: project, env, encoding: 'utf8' });
    assert.equal(install.status, 0, install.stdout + install.stderr);

    // As `export FEUILLETON_PORT=…` in the operator's shell: every command sees it.
    env.FEUILLETON_PORT = String(port);
    server = spawn('npm', ['start'], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      'npm start printing its URL',
      () =>
        output.includes(`at ${base}/`)
          ? true
          : server!.exitCode !== null
            ? Promise.reject(new Error(output))
            : undefined,
      () => output,
    );
    assert.match(output, /serving \\"The Salt Road\\"/);

    const outboxDir = path.join(project, 'data', 'outbox');
    const confirm = await subscribeAndConfirm(base, outboxDir, 'first.reader@example.org', () => output);
    assert.ok(confirm.startsWith(`${base}/confirm?token=`), confirm);

    const send = spawnSync('npx', ['feuilleton', 'send'], { cwd: project, env, encoding: 'utf8' });
    assert.equal(send.status, 0, send.stdout + send.stderr);
    assert.match(send.stdout, /sent 1\b/);
    const installment = (await outbox(outboxDir)).find(
      (m) => (m.to as { text: string } | undefined)?.text === 'first.reader@example.org' && /One/.test(m.subject ?? ''),
    );
    assert.ok(installment, 'the first installment is in the outbox');
    assert.equal(installment.from?.text, '"The Salt Road" <serial@salt-road.example.net>');
    assert.ok(
      linkIn(installment.text ?? '', '/unsubscribe').startsWith(`${base}/`),
      'unsubscribe link on the port in use',
    );
    assert.equal((await fetch(`${base}/installments/1`)).status, 200);

    process.kill(-server.pid!, 'SIGTERM');
    await waitFor(
      'a clean stop',
      () => (/stopped cleanly/.test(output) ? true : undefined),
      () => output,
    );
  });
});

describe('serve and ports', () => {
  let served: CliProcess | undefined;
  after(() => served?.child.kill('SIGKILL'));

  function projectDir(settings: Record<string, unknown>): string {
    const dir = mkdtempSync(path.join(work, 'ports-'));
    writeFileSync(
      path.join(dir, 'feuilleton.yaml'),
      stringify({ story: { file: SAMPLE_STORY }, schedule: { enabled: false }, ...settings }),
    );
    return dir;
  }

  async function serve(dir: string, args: string[]): Promise<{ base: string; output: () => string }> {
    served = spawnCli(['serve', ...args], { cwd: dir });
    const m = await waitFor(
      'serve printing its URL',
      () => /serving .* at (http:\/\/127\.0\.0\.1:\d+)\//.exec(served!.output()) ?? undefined,
      () => served!.output(),
    );
    return { base: m[1]!, output: () => served!.output() };
  }

  test('port 0 with baseUrl unset: the links follow the port the server got', async () => {
    const dir = projectDir({});
    const { base, output } = await serve(dir, ['--port', '0']);
    assert.doesNotMatch(base, /:0$/);
    const confirm = await subscribeAndConfirm(base, path.join(dir, 'data', 'outbox'), 'any.port@example.org', output);
    assert.ok(confirm.startsWith(`${base}/confirm?token=`), confirm);
    assert.doesNotMatch(output(), /baseUrl .* is on port/);
    served!.child.kill('SIGTERM');
    await served!.done;
  });

  test('a set loopback baseUrl on another port: a warning at start, naming both ports', async () => {
    const dir = projectDir({ baseUrl: 'http://127.0.0.1:3000' });
    const port = await freePort();
    const { output } = await serve(dir, ['--port', String(port)]);
    assert.match(
      output(),
      new RegExp(`baseUrl http://127\\.0\\.0\\.1:3000 is on port 3000 but the server listens on ${port}`),
    );
    served!.child.kill('SIGTERM');
    await served!.done;
  });
});
