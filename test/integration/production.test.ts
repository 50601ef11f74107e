// Going live is explicit: in production the local outbox is refused unless chosen by name,
// /outbox is shown only to the machine itself, and a DKIM key that cannot make a signature
// receivers verify stops `send` and `serve` before anything is recorded. The real CLI,
// server, SQLite file and SMTP server on 127.0.0.1.
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { get } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config.ts';
import { verifyDkim } from '../../src/deliver/dkim.ts';
import { addSubscriber } from '../../src/subscribers/admin.ts';
import { runCli, spawnCli, type CliResult } from '../helpers/cli.ts';
import { writeKey, type KeyKind } from '../helpers/dkim-keys.ts';
import { startSite, type Site } from '../helpers/feeds-site.ts';
import { makeProject, type Project } from '../helpers/project.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

/** A project with one active reader, and what its database holds. */
function projectWithReader(settings: Record<string, unknown>): Project {
  const project = makeProject({ settings });
  const app = project.open();
  try {
    addSubscriber(app.store, 'reader@example.org');
  } finally {
    app.store.close();
  }
  return project;
}

function ledger(project: Project): { published: number; deliveries: number } {
  const app = project.open();
  try {
    const counts = app.store.deliveries.countByStatus();
    return {
      published: app.store.installments.count().published,
      deliveries: counts.queued + counts.sending + counts.sent + counts.failed,
    };
  } finally {
    app.store.close();
  }
}

const outboxFiles = (project: Project): string[] => {
  const dir = path.join(project.dir, 'data', 'outbox');
  return existsSync(dir) ? readdirSync(dir) : [];
};

function assertOneLine(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code; stdout: ${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, no stack trace:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

/** `serve` as systemd would start it; a server that keeps running instead of refusing is stopped and reported. */
async function serveRefusal(project: Project, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const p = spawnCli(['serve', '--port', '0', '-c', project.configPath], { env });
  const timer = setTimeout(() => p.child.kill('SIGTERM'), 15_000);
  try {
    return await p.done;
  } finally {
    clearTimeout(timer);
  }
}

describe('production never falls back to the local outbox', () => {
  const ways: Array<[string, Record<string, unknown>, NodeJS.ProcessEnv, RegExp]> = [
    ['NODE_ENV=production', {}, { NODE_ENV: 'production' }, /NODE_ENV=production/],
    ['production: true', { production: true }, {}, /production: true/],
    [
      'a public baseUrl',
      { baseUrl: 'https://serial.example.org' },
      {},
      /baseUrl https:\/\/serial\.example\.org is not a loopback address/,
    ],
  ];
  for (const [why, settings, env, reason] of ways) {
    test(`${why}, no smtpUrl: send refuses in one line before recording anything`, async () => {
      const project = projectWithReader(settings);
      try {
        const r = await runCli(['send', '-c', project.configPath], undefined, env);
        assertOneLine(r, /no mail server in production/);
        assert.match(r.stderr, reason);
        assert.match(r.stderr, /set FEUILLETON_SMTP_URL or mail\.smtpUrl/);
        assert.match(r.stderr, /mail\.outboxInProduction: true/);
        assert.deepEqual(
          ledger(project),
          { published: 0, deliveries: 0 },
          'installment 1 is not published; no delivery recorded',
        );
        assert.deepEqual(outboxFiles(project), []);
      } finally {
        project.cleanup();
      }
    });
  }

  test('serve refuses to start, in one line', async () => {
    const project = projectWithReader({ baseUrl: 'https://serial.example.org' });
    try {
      assertOneLine(
        await serveRefusal(project),
        /no mail server in production .*set FEUILLETON_SMTP_URL or mail\.smtpUrl/,
      );
    } finally {
      project.cleanup();
    }
  });

  test('mail.outboxInProduction: true keeps the outbox by choice', async () => {
    const project = projectWithReader({
      baseUrl: 'https://serial.example.org',
      mail: { outboxInProduction: true, postalAddress: '1 Quay Street, Porthaven' },
    });
    try {
      const r = await runCli(['send', '-c', project.configPath]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(ledger(project), { published: 1, deliveries: 1 });
      assert.equal(outboxFiles(project).filter((f) => f.endsWith('.eml')).length, 1);
      // What check finds is said at the start, one line each.
      assert.match(
        r.stderr,
        /^warning: mail\.outboxInProduction is true: mail goes to the local outbox and reaches no reader/m,
      );
      assert.match(r.stderr, /^warning: no DKIM signature: /m);
    } finally {
      project.cleanup();
    }
  });

  test('outside production the outbox stays the zero-config default', async () => {
    const project = projectWithReader({});
    try {
      const r = await runCli(['send', '-c', project.configPath]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(ledger(project), { published: 1, deliveries: 1 });
      assert.doesNotMatch(r.stderr, /warning:/, 'the local tour is not lectured about going live');
    } finally {
      project.cleanup();
    }
  });
});

describe('/outbox is shown only to the machine it runs on', () => {
  const started: Array<{ project: Project; site: Site }> = [];
  after(async () => {
    for (const { project, site } of started) {
      await site.stop();
      project.cleanup();
    }
  });

  /** A server with one message in its outbox; the paths of the three outbox pages. */
  async function siteWithMail(server: Record<string, unknown>): Promise<{ site: Site; pages: string[] }> {
    const project = makeProject({ settings: { server } });
    const site = await startSite(project);
    started.push({ project, site });
    await site.serving.runtime.transport.send({
      to: 'reader@example.org',
      subject: 'Confirm',
      html: '<p>hello</p>',
      text: 'hello',
      messageId: '<t@example.org>',
    });
    const [id] = readdirSync(site.app.config.paths.outbox)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5));
    return { site, pages: ['/outbox', `/outbox/${id}`, `/outbox/${id}/html`] };
  }

  async function statuses(site: Site, pages: string[], headers: Record<string, string> = {}): Promise<number[]> {
    return Promise.all(
      pages.map(async (p) => {
        const res = await site.get(p, headers);
        const body = await res.text();
        if (res.status === 404) assert.match(body, /Page not found/, 'the ordinary 404 page');
        return res.status;
      }),
    );
  }

  test('loopback (the default): a local browser gets it, a request through a proxy does not', async () => {
    const { site, pages } = await siteWithMail({});
    assert.deepEqual(await statuses(site, pages), [200, 200, 200]);
    assert.deepEqual(await statuses(site, pages, { 'x-forwarded-for': '203.0.113.9' }), [404, 404, 404]);
    assert.deepEqual(await statuses(site, pages, { forwarded: 'for=203.0.113.9;proto=https' }), [404, 404, 404]);
    assert.deepEqual(await statuses(site, pages, { 'x-real-ip': '203.0.113.9' }), [404, 404, 404]);
    // A proxy that adds no header but passes the public host name on.
    const { port } = new URL(site.serving.url);
    const viaPublicName = await new Promise<number | undefined>((resolve, reject) =>
      get({ host: '127.0.0.1', port, path: '/outbox', headers: { host: 'serial.example.org' } }, (res) =>
        resolve(res.resume().statusCode),
      ).on('error', reject),
    );
    assert.equal(viaPublicName, 404);
  });

  test('loopback with trustProxy naming the proxy: a forwarded request is still not local', async () => {
    const { site, pages } = await siteWithMail({ trustProxy: '127.0.0.1' });
    assert.deepEqual(await statuses(site, pages, { 'x-forwarded-for': '127.0.0.1' }), [404, 404, 404]);
    assert.deepEqual(await statuses(site, pages), [200, 200, 200]);
  });

  test('off: nobody, not even the machine itself', async () => {
    const { site, pages } = await siteWithMail({ outboxPage: 'off' });
    assert.deepEqual(await statuses(site, pages), [404, 404, 404]);
  });

  test('public: anyone, proxied or not', async () => {
    const { site, pages } = await siteWithMail({ outboxPage: 'public' });
    assert.deepEqual(await statuses(site, pages, { 'x-forwarded-for': '203.0.113.9' }), [200, 200, 200]);
  });
});

describe('DKIM: the key is test-signed before the first message', () => {
  const sink = new SmtpSink();
  before(() => sink.start());
  after(() => sink.stop());

  function dkimProject(kind: KeyKind): { project: Project; publicKey: string | undefined } {
    const project = projectWithReader({
      mail: {
        smtpUrl: sink.url,
        postalAddress: '1 Quay Street, Porthaven',
        dkim: { domainName: 'example.org', keySelector: 'feuilleton', privateKeyFile: 'dkim-private.pem' },
      },
    });
    return { project, publicKey: writeKey(project.dir, 'dkim-private.pem', kind) };
  }

  const refused: Array<[KeyKind, RegExp]> = [
    ['garbage', /cannot be read as a private key/],
    ['truncated', /cannot be read as a private key/],
    ['corrupt', /fails a test signature/],
    ['ed25519', /Ed25519/],
    ['ec', /EC key/],
    ['rsa-pss', /RSA-PSS/],
    ['rsa512', /512-bit RSA key: too short/],
  ];
  for (const [kind, reason] of refused) {
    test(`${kind} key: send refuses in one line naming the setting and the fix; no mail, nothing recorded`, async () => {
      const { project } = dkimProject(kind);
      try {
        const before = sink.count;
        const r = await runCli(['send', '-c', project.configPath]);
        assertOneLine(r, /mail\.dkim\.privateKeyFile .*dkim-private\.pem/);
        assert.match(r.stderr, reason);
        assert.match(r.stderr, /openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim-private\.pem/);
        assert.equal(sink.count, before, 'nothing reached the mail server');
        assert.deepEqual(ledger(project), { published: 0, deliveries: 0 });
      } finally {
        project.cleanup();
      }
    });
  }

  test('ed25519 key: serve refuses to start too', async () => {
    const { project } = dkimProject('ed25519');
    try {
      assertOneLine(await serveRefusal(project), /mail\.dkim\.privateKeyFile .*Ed25519/);
    } finally {
      project.cleanup();
    }
  });

  test('RSA 2048: the reader gets mail whose DKIM-Signature verifies against the published key', async () => {
    const { project, publicKey } = dkimProject('rsa2048');
    try {
      const r = await runCli(['send', '-c', project.configPath]);
      assert.equal(r.code, 0, r.stderr);
      await sink.waitFor(() => sink.to('reader@example.org').length === 1);
      const raw = sink.to('reader@example.org')[0]!.raw;
      const signature = /^DKIM-Signature: (.*(?:\r\n[ \t].*)*)/m.exec(raw.toString('latin1'))?.[1];
      assert.ok(signature, 'the message is signed');
      assert.match(signature, /\bd=example\.org;/);
      assert.match(signature, /\bs=feuilleton;/);
      assert.match(signature, /\ba=rsa-sha256;/);
      const key = createPublicKey(publicKey!);
      assert.equal(verifyDkim(raw, key), undefined);
      // The verifier does check: the same message with its subject changed fails.
      const forged = Buffer.from(raw.toString('latin1').replace(/^Subject: /m, 'Subject: Re: '), 'latin1');
      assert.match(verifyDkim(forged, key) ?? '', /signature does not verify/);
    } finally {
      project.cleanup();
    }
  });
});

describe('feuilleton check, and the same findings at serve and in status', () => {
  const SAMPLE = path.join(PACKAGE_ROOT, 'feuilleton.yaml');

  test('the shipped sample config: errors and warnings, each with its fix; exit 0 outside production', async () => {
    const r = await runCli(['check', '-c', SAMPLE]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(
      lines[0],
      'Production: off (baseUrl http://127.0.0.1:3000 is a loopback address and NODE_ENV is not production)',
    );
    assert.equal(lines[1], `Config:     ${SAMPLE}`);
    assert.equal(lines[3], 'Errors (5):');
    assert.match(lines[4]!, /^ {2}baseUrl http:\/\/127\.0\.0\.1:3000 is a loopback address/);
    assert.ok(lines.includes('Warnings (1):'));
    assert.equal(
      lines.at(-1),
      'Not in production, so nothing here stops serve or send; fix the errors before going live.',
    );
  });

  test('NODE_ENV=production: exit 1, and --json gives the same findings', async () => {
    const text = await runCli(['check', '-c', SAMPLE], undefined, { NODE_ENV: 'production' });
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^Production: on \(NODE_ENV=production\)/);
    assert.match(text.stdout, /^ {2}no mail server in production \(NODE_ENV=production\): /m);
    const json = await runCli(['check', '--json', '-c', SAMPLE], undefined, { NODE_ENV: 'production' });
    assert.equal(json.code, 1);
    const data = JSON.parse(json.stdout) as {
      production: boolean;
      errors: string[];
      warnings: string[];
      dkimRecord: string | null;
    };
    assert.equal(data.production, true);
    assert.equal(data.dkimRecord, null);
    for (const line of [...data.errors, ...data.warnings]) assert.ok(text.stdout.includes(`\n  ${line}\n`), line);
  });

  test('status shows each finding in production, and only a count on the local tour', async () => {
    const live = projectWithReader({ baseUrl: 'https://serial.example.org', mail: { outboxInProduction: true } });
    const local = projectWithReader({});
    try {
      const r = await runCli(['status', '-c', live.configPath]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Going live: {4}production; 3 error\(s\), 2 warning\(s\):$/m);
      assert.match(r.stdout, /^ {2}error: mail\.postalAddress is empty: /m);
      assert.match(r.stdout, /^ {2}warning: mail\.outboxInProduction is true: /m);
      const json = JSON.parse((await runCli(['status', '--json', '-c', live.configPath])).stdout) as {
        goingLive: { production: boolean; errors: string[]; warnings: string[] };
      };
      assert.equal(json.goingLive.production, true);
      assert.equal(json.goingLive.errors.length, 3);
      assert.equal(json.goingLive.warnings.length, 2);
      const tour = await runCli(['status', '-c', local.configPath]);
      assert.match(
        tour.stdout,
        /^Going live: {4}not in production; 5 error\(s\), 0 warning\(s\) to fix first \(feuilleton check\)$/m,
      );
      assert.doesNotMatch(tour.stdout, /^ {2}error:/m);
    } finally {
      live.cleanup();
      local.cleanup();
    }
  });

  test('serve logs every finding as a warning when it starts in production', async () => {
    const project = projectWithReader({ baseUrl: 'https://serial.example.org', mail: { outboxInProduction: true } });
    const p = spawnCli(['serve', '--port', '0', '-c', project.configPath], { env: { LOG_LEVEL: 'info' } });
    try {
      const until = Date.now() + 15_000;
      while (!/serving "/.test(p.output()) && p.child.exitCode === null && Date.now() < until)
        await new Promise((r) => setTimeout(r, 50));
      const warnings = p
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { level: number; msg: string })
        .filter((l) => l.level === 40)
        .map((l) => l.msg);
      assert.ok(
        warnings.some((w) => w.startsWith('mail.outboxInProduction is true: ')),
        p.output(),
      );
      assert.ok(
        warnings.some((w) => w.startsWith('mail.postalAddress is empty: ')),
        p.output(),
      );
    } finally {
      p.child.kill('SIGTERM');
      await p.done;
      project.cleanup();
    }
  });
});
