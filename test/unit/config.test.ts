import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function configFile(yaml: string): string {
  const file = path.join(dir, `c${n++}.yaml`);
  writeFileSync(file, yaml);
  return file;
}
function rejects(yaml: string, message: RegExp): void {
  const file = configFile(yaml);
  assert.throws(
    () => loadConfig({ configPath: file, env: {} }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.ok(err.message.startsWith(file), `names the file: ${err.message}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('config validation: errors name the key and the file', () => {
  test('unknown top-level key', () => rejects('colour: blue\n', /unknown setting colour/));
  test('unknown nested key (a typo)', () =>
    rejects('split:\n  targetWrods: 500\n', /unknown setting split\.targetWrods/));
  test('wrong type', () => rejects('server:\n  port: "eighty"\n', /server\.port/));
  test('mode outside its choices', () => rejects('mode: sometimes\n', /mode/));
  test('relative baseUrl', () => rejects('baseUrl: /serial\n', /baseUrl/));
  test('baseUrl that is not http(s)', () => rejects('baseUrl: ftp://example.org/\n', /baseUrl/));
  test('invalid cron expression', () => rejects('schedule:\n  cron: "every tuesday"\n', /schedule\.cron/));
  test('unknown timezone', () => rejects('schedule:\n  timezone: Mars/Olympus\n', /schedule\.timezone/));
  test('not YAML', () => rejects('story: [unclosed\n', /not valid YAML/));
  test('a YAML error names its line and column', () =>
    rejects('mode: broadcast\nserver:\n  port: 3000\n   host: x\n', /^[^\n]*\.yaml:[34]:\d+: not valid YAML/));
  test('every problem is reported, one line each, not only the first', () => {
    const file = configFile(
      'colour: blue\nmode: sometimes\nserver:\n  port: "eighty"\nschedule:\n  timezone: Mars/Olympus\n',
    );
    assert.throws(
      () => loadConfig({ configPath: file, env: {} }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const lines = err.message.split('\n');
        assert.equal(lines.length, 4, err.message);
        for (const line of lines) assert.ok(line.startsWith(`${file}: `), line);
        for (const key of [/unknown setting colour/, /mode/, /server\.port/, /schedule\.timezone/])
          assert.ok(
            lines.some((l) => key.test(l)),
            `${key}: ${err.message}`,
          );
        return true;
      },
    );
  });
  test('top level not a mapping', () => rejects('- a\n- b\n', /mapping/));
  test('trustProxy: true is refused in one line: the proxy must be named', () => {
    rejects(
      'server:\n  trustProxy: true\n',
      /^[^\n]*server\.trustProxy true would trust any client's X-Forwarded-For; list your reverse proxy's address[^\n]*$/,
    );
  });
  test('trustProxy takes an address, a CIDR range or a list of them', () => {
    for (const [yaml, expected] of [
      ['127.0.0.1', '127.0.0.1'],
      ['"10.0.0.0/8"', '10.0.0.0/8'],
      ['[127.0.0.1, "::1", "192.168.0.0/16"]', ['127.0.0.1', '::1', '192.168.0.0/16']],
      ['false', false],
    ] as const) {
      const c = loadConfig({
        configPath: configFile(`baseUrl: http://127.0.0.1:3000\nserver:\n  trustProxy: ${yaml}\n`),
        env: {},
      });
      assert.deepEqual(c.server.trustProxy, expected);
    }
    rejects('server:\n  trustProxy: everyone\n', /server\.trustProxy/);
    rejects('server:\n  trustProxy: "10.0.0.0/33"\n', /server\.trustProxy/);
  });
  test('a YAML alias bomb (billion laughs) is refused in one line, not expanded', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [prev, name] of [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'd'],
      ['d', 'e'],
      ['e', 'f'],
      ['f', 'g'],
      ['g', 'h'],
    ])
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    rejects(levels.join('\n') + '\n', /^[^\n]*: too many YAML aliases \(\*name\)[^\n]*$/);
  });
  test('no config file anywhere: one line saying where it looked, when a file is required', () => {
    const empty = mkdtempSync(path.join(dir, 'empty-'));
    assert.throws(
      () => loadConfig({ cwd: empty, env: {}, requireFile: true }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.message.split('\n').length, 1, err.message);
        assert.ok(err.message.includes(path.join(empty, 'feuilleton.yaml')), err.message);
        assert.match(err.message, /FEUILLETON_CONFIG/);
        assert.match(err.message, /--config/);
        assert.match(err.message, /feuilleton init/);
        return true;
      },
    );
  });
  test('missing config file given explicitly', () => {
    assert.throws(() => loadConfig({ configPath: path.join(dir, 'absent.yaml'), env: {} }), /config file not found/);
  });
});

describe('config defaults and environment', () => {
  test('defaults: broadcast, 127.0.0.1:3000, five minutes at 230 wpm, outbox under data/', () => {
    const file = configFile('baseUrl: http://127.0.0.1:3000\n');
    const c = loadConfig({ configPath: file, env: {} });
    assert.equal(c.mode, 'broadcast');
    assert.equal(c.server.host, '127.0.0.1');
    assert.equal(c.server.port, 3000);
    assert.equal(c.split.targetWords, 1150);
    assert.equal(c.mail.smtpUrl, undefined);
    assert.equal(c.paths.outbox, path.join(dir, 'data', 'outbox'));
  });

  test('targetWords wins over minutes when given', () => {
    const c = loadConfig({
      configPath: configFile(
        'baseUrl: http://127.0.0.1:3000\nsplit:\n  targetWords: 600\n  targetMinutes: 2\n  wordsPerMinute: 230\n',
      ),
      env: {},
    });
    assert.equal(c.split.targetWords, 600);
  });

  test('secrets and deployment values come from the environment', () => {
    const c = loadConfig({
      configPath: configFile('mail:\n  smtpUrl: smtp://from-file:25\n'),
      env: {
        FEUILLETON_SMTP_URL: 'smtps://user:pass@relay.invalid:465',
        FEUILLETON_SECRET: 'x'.repeat(40),
        FEUILLETON_BASE_URL: 'https://serial.example.org/',
        FEUILLETON_PORT: '8080',
      },
    });
    assert.equal(c.mail.smtpUrl, 'smtps://user:pass@relay.invalid:465');
    assert.equal(c.secret, 'x'.repeat(40));
    assert.match(c.baseUrl, /^https:\/\/serial\.example\.org\/?$/);
    assert.equal(c.server.port, 8080);
  });

  test('a bad FEUILLETON_PORT is blamed on the variable, not on the file', () => {
    const file = configFile('baseUrl: http://127.0.0.1:3000\n');
    for (const bad of ['abc', '70000', '30.5']) {
      assert.throws(
        () => loadConfig({ configPath: file, env: { FEUILLETON_PORT: bad } }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.ok(err.message.startsWith(`FEUILLETON_PORT=${bad} `), err.message);
          assert.ok(!err.message.includes(file), `the file is not to blame: ${err.message}`);
          assert.equal(err.message.split('\n').length, 1);
          return true;
        },
      );
    }
  });

  test('a bad value from the environment is reported too', () => {
    assert.throws(
      () => loadConfig({ configPath: configFile('{}\n'), env: { FEUILLETON_BASE_URL: 'not a url' } }),
      /baseUrl/,
    );
  });
});

describe('baseUrl left unset follows the server address', () => {
  test('server.port, FEUILLETON_PORT and server.host make the links', () => {
    const file = configFile('server:\n  port: 3101\n');
    const c = loadConfig({ configPath: file, env: {} });
    assert.equal(c.baseUrl, 'http://127.0.0.1:3101');
    assert.equal(c.baseUrlFollowsServer, true);
    assert.equal(c.production, false);
    assert.equal(loadConfig({ configPath: file, env: { FEUILLETON_PORT: '3202' } }).baseUrl, 'http://127.0.0.1:3202');
    assert.equal(
      loadConfig({ configPath: configFile('server:\n  host: "::1"\n'), env: {} }).baseUrl,
      'http://[::1]:3000',
    );
    assert.equal(
      loadConfig({ configPath: configFile('server:\n  host: 0.0.0.0\n'), env: {} }).baseUrl,
      'http://127.0.0.1:3000',
      'a wildcard address is reached through loopback',
    );
  });
  test('a baseUrl that is set stays as it is', () => {
    const c = loadConfig({
      configPath: configFile('baseUrl: http://127.0.0.1:3000\nserver:\n  port: 3101\n'),
      env: {},
    });
    assert.equal(c.baseUrl, 'http://127.0.0.1:3000');
    assert.equal(c.baseUrlFollowsServer, false);
  });
  test('in production an unset baseUrl is an error', () => {
    rejects('production: true\n', /baseUrl is missing/);
    const file = configFile('{}\n');
    assert.throws(() => loadConfig({ configPath: file, env: { NODE_ENV: 'production' } }), /baseUrl is missing/);
  });
});
