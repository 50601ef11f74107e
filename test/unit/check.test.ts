// The going-live check as a function: a config in, findings out, one per problem, each
// naming the setting and its fix.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { check, checkConfig, checkFailed, checkReport } from '../../src/commands/check.ts';
import { loadConfig, PACKAGE_ROOT, type Config } from '../../src/config.ts';
import { writeKey, type KeyKind } from '../helpers/dkim-keys.ts';
import { makeProject, type Project } from '../helpers/project.ts';

const projects: Project[] = [];
after(() => projects.forEach((p) => p.cleanup()));

/** A config an operator could go live with: every later test breaks one thing. */
const GOOD = {
  baseUrl: 'https://serial.example.net',
  server: { trustProxy: '127.0.0.1' },
  mail: {
    from: 'The Quay Papers <serial@quaypapers.net>',
    smtpUrl: 'smtps://user:pass@smtp.postmarkapp.com:465',
    postalAddress: '1 Quay Street, Porthaven PH1 2AB',
    relaySignsDkim: true,
  },
  webhooks: { postmark: { token: 'a-long-random-token-0123456789' } },
};

function configWith(change: (s: Record<string, any>) => void, key?: KeyKind): Config {
  const settings: Record<string, any> = structuredClone(GOOD);
  change(settings);
  const project = makeProject({ settings });
  projects.push(project);
  if (key) writeKey(project.dir, 'dkim.pem', key);
  return project.config();
}

const texts = (config: Config, level: 'error' | 'warning') =>
  checkConfig(config)
    .filter((f) => f.level === level)
    .map((f) => f.text);

describe('checkConfig', () => {
  test('a config ready to go live: nothing to say', () => {
    const config = configWith(() => {});
    assert.equal(config.production, true);
    assert.deepEqual(checkConfig(config), []);
  });

  test('the shipped sample config: every going-live problem, but not in production', () => {
    const config = loadConfig({ configPath: path.join(PACKAGE_ROOT, 'feuilleton.yaml'), env: {} });
    const r = check(config);
    assert.equal(r.production, false);
    assert.equal(checkFailed(r), false);
    assert.equal(r.errors.length, 5, r.errors.join('\n'));
    assert.match(
      r.errors[0]!,
      /^baseUrl http:\/\/127\.0\.0\.1:3000 is a loopback address: .*; set baseUrl \(or FEUILLETON_BASE_URL\) to the site's public https:\/\/ address$/,
    );
    assert.match(
      r.errors[1]!,
      /^no mail server: mail goes to the local outbox and reaches no reader; set FEUILLETON_SMTP_URL or mail\.smtpUrl/,
    );
    assert.match(
      r.errors[2]!,
      /^mail\.from "The Lamplighter's Ledger <serial@localhost>" sends from localhost: .*; use an address on your own domain/,
    );
    assert.match(
      r.errors[3]!,
      /^mail\.postalAddress is still the sample's \("Feuilleton demo · 1 Ropewalk Stair · Skelby Haven"\): .*; set yours/,
    );
    assert.match(
      r.errors[4]!,
      /^no DKIM signature: .*; configure mail\.dkim, or set mail\.relaySignsDkim: true if your relay signs \(SES Easy DKIM and Postmark do\)$/,
    );
    assert.deepEqual(r.warnings, [
      `mail.from still has the sample's name "The Lamplighter's Ledger"; put your story's title or your own name`,
    ]);
    assert.match(
      checkReport(r),
      /Not in production, so nothing here stops serve or send; fix the errors before going live\.$/,
    );
  });

  // The last element: other findings the change brings with it.
  const problems: Array<[string, (s: Record<string, any>) => void, 'error' | 'warning', RegExp, number?]> = [
    [
      'http baseUrl',
      (s) => (s.baseUrl = 'http://serial.example.net'),
      'error',
      /^baseUrl http:\/\/serial\.example\.net is http: .*set an https:\/\/ baseUrl$/,
    ],
    [
      'no mail server in production',
      (s) => delete s.mail.smtpUrl,
      'error',
      /^no mail server in production \(baseUrl https:\/\/serial\.example\.net is not a loopback address\): .*mail\.outboxInProduction: true/,
    ],
    [
      'the outbox by choice',
      (s) => (delete s.mail.smtpUrl, (s.mail.outboxInProduction = true)),
      'warning',
      /^mail\.outboxInProduction is true: mail goes to the local outbox and reaches no reader/,
    ],
    [
      'a public outbox page',
      (s) => (delete s.mail.smtpUrl, (s.mail.outboxInProduction = true), (s.server.outboxPage = 'public')),
      'error',
      /^server\.outboxPage is public: anyone can read every reader's mail at \/outbox.*; set it to loopback \(or off\)$/,
      1,
    ],
    [
      'localhost sender',
      (s) => (s.mail.from = 'serial@localhost'),
      'error',
      /^mail\.from "serial@localhost" sends from localhost:/,
    ],
    [
      'example.org sender',
      (s) => (s.mail.from = 'Tales <tales@example.org>'),
      'error',
      /^mail\.from "Tales <tales@example\.org>" sends from example\.org:/,
    ],
    [
      'the sample sender name',
      (s) => (s.mail.from = `"The Lamplighter's Ledger" <serial@quaypapers.net>`),
      'warning',
      /^mail\.from still has the sample's name/,
    ],
    [
      'no postal address',
      (s) => (s.mail.postalAddress = ''),
      'error',
      /^mail\.postalAddress is empty: anti-spam law .*; set yours/,
    ],
    [
      'no DKIM, relay not signing',
      (s) => (s.mail.relaySignsDkim = false),
      'error',
      /^no DKIM signature: mail\.dkim is not set and mail\.relaySignsDkim is false/,
    ],
    [
      'no webhook while sending through SMTP',
      (s) => delete s.webhooks.postmark,
      'warning',
      /^no bounce or complaint webhook \(webhooks\.ses or webhooks\.postmark\): bounces and spam complaints .* go unheard/,
    ],
    [
      'no trusted proxy in front of a loopback server',
      (s) => (s.server.trustProxy = false),
      'warning',
      /^server\.trustProxy is false while the server listens on 127\.0\.0\.1 behind a proxy: .*set server\.trustProxy to the proxy's address/,
    ],
  ];
  for (const [name, change, level, pattern, others = 0] of problems) {
    test(`${name}: one ${level}, naming the setting and the fix`, () => {
      const findings = checkConfig(configWith(change));
      assert.equal(findings.length, 1 + others, findings.map((f) => f.text).join('\n'));
      const found = findings.filter((f) => pattern.test(f.text));
      assert.equal(found.length, 1, findings.map((f) => f.text).join('\n'));
      assert.equal(found[0]!.level, level);
      assert.ok(!found[0]!.text.includes('\n'));
    });
  }

  test('outside production a loopback server needs no trusted proxy', () => {
    assert.deepEqual(checkConfig(configWith((s) => ((s.production = false), (s.server.trustProxy = false)))), []);
  });
});

describe('checkConfig: DKIM', () => {
  const withKey = (key: KeyKind) =>
    configWith((s) => {
      s.mail.relaySignsDkim = false;
      s.mail.dkim = { domainName: 'quaypapers.net', keySelector: 'feuilleton', privateKeyFile: 'dkim.pem' };
    }, key);

  test('a 2048-bit key: no finding, and the TXT record to publish', () => {
    const r = check(withKey('rsa2048'));
    assert.deepEqual([...r.errors, ...r.warnings], []);
    assert.match(r.dkimRecord ?? '', /^feuilleton\._domainkey\.quaypapers\.net TXT "v=DKIM1; k=rsa; p=MIIB/);
    assert.ok(
      checkReport(r).includes(
        `DKIM: publish this DNS record (receivers verify signatures with it):\n  ${r.dkimRecord}`,
      ),
    );
  });

  test('a 1024-bit key: a warning recommending 2048 bits', () => {
    assert.deepEqual(texts(withKey('rsa1024'), 'error'), []);
    assert.match(
      texts(withKey('rsa1024'), 'warning')[0] ?? '',
      /is a 1024-bit RSA key: it works, but 2048 bits is the recommended minimum; make one with: openssl genpkey/,
    );
  });

  test('an Ed25519 key: the same error that stops sending, and no record', () => {
    const r = check(withKey('ed25519'));
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!, /^mail\.dkim\.privateKeyFile .*dkim\.pem is an Ed25519 key/);
    assert.equal(r.dkimRecord, null);
    assert.equal(checkFailed(r), true);
  });

  test('the key inspection can be handed in: the rest is a pure function of the config', () => {
    const config = configWith(() => {});
    assert.deepEqual(checkConfig(config, { problem: 'mail.dkim.privateKeyFile k.pem is bad; fix it' }), [
      { level: 'error', text: 'mail.dkim.privateKeyFile k.pem is bad; fix it' },
    ]);
  });
});
