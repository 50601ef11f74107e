// The author's side of the subscriber list (`feuilleton subscribers …`) against a real
// SQLite file: CSV import, export, erasure and access requests.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import type { App } from '../../src/app.ts';
import {
  addSubscriber,
  CsvError,
  exportSubscribers,
  forgetSubscriber,
  importCsv,
  removeSubscriber,
  showSubscriber,
} from '../../src/subscribers/admin.ts';
import { makeProject, type Project } from '../helpers/project.ts';

describe('subscribers admin', () => {
  let project: Project;
  let app: App;

  const csv = (name: string, text: string): string => {
    const file = path.join(project.dir, name);
    writeFileSync(file, text);
    return file;
  };
  const total = () => Object.values(app.store.subscribers.countByStatus()).reduce((a, b) => a + b, 0);
  const exported = (format: 'csv' | 'json', status?: 'active' | 'pending' | 'unsubscribed'): string => {
    let out = '';
    exportSubscribers(app.store, format, (chunk) => (out += chunk), status);
    return out;
  };

  beforeEach(() => {
    app?.store.close();
    project?.cleanup();
    project = makeProject();
    app = project.open();
  });

  after(() => {
    app.store.close();
    project.cleanup();
  });

  describe('import', () => {
    it('adds every row as active, and importing the same file again adds nobody', () => {
      const file = csv('list.csv', 'email,name\nann@example.org,Ann\nbob@example.org,Bob\n\ncarla@Example.ORG,Carla\n');
      const first = importCsv(app.store, file);
      assert.deepEqual(
        {
          rows: first.rows,
          added: first.added,
          alreadyPresent: first.alreadyPresent,
          errors: first.errors,
          imported: first.imported,
          ignored: first.ignoredColumns,
        },
        { rows: 3, added: 3, alreadyPresent: 0, errors: [], imported: true, ignored: ['name'] },
      );
      assert.equal(total(), 3);
      const carla = app.store.subscribers.byEmail('carla@example.org');
      assert.equal(carla?.status, 'active');
      assert.equal(carla.email, 'carla@example.org', 'the domain is stored lower-case');
      assert.equal(carla.source, 'import');
      assert.ok(carla.confirmedAt);

      const second = importCsv(app.store, file);
      assert.equal(second.added, 0);
      assert.equal(second.alreadyPresent, 3);
      assert.equal(second.imported, true);
      assert.equal(total(), 3);
    });

    it('counts duplicates within the file once, whatever their case', () => {
      const r = importCsv(
        app.store,
        csv('dups.csv', 'Email\nann@example.org\nANN@example.org\nann@EXAMPLE.org\nbob@example.org\n'),
      );
      assert.equal(r.added, 2);
      assert.equal(r.duplicatesInFile, 2);
      assert.equal(total(), 2);
    });

    it('never reactivates someone who unsubscribed or is waiting to confirm', () => {
      app.store.subscribers.create({ email: 'left@example.org', status: 'unsubscribed' });
      app.store.subscribers.create({ email: 'waiting@example.org', status: 'pending' });
      const r = importCsv(
        app.store,
        csv('known.csv', 'email\nleft@example.org\nwaiting@example.org\nnew@example.org\n'),
      );
      assert.equal(r.added, 1);
      assert.equal(r.alreadyPresent, 2);
      assert.equal(app.store.subscribers.byEmail('left@example.org')?.status, 'unsubscribed');
      assert.equal(app.store.subscribers.byEmail('waiting@example.org')?.status, 'pending');
    });

    it('reports every bad row with its file and line number and imports nothing', () => {
      const file = csv(
        'bad.csv',
        [
          'email,subscribed_at', // 1
          'ann@example.org,2024-01-31', // 2
          'not-an-address,2024-02-01', // 3
          '', // 4 (blank: skipped, still counted as a line)
          '"Bob <bob@example.org>",2024-02-02', // 5
          'carla@example.org,yesterday', // 6
          'dan@example.org,', // 7
        ].join('\n') + '\n',
      );
      const r = importCsv(app.store, file);
      assert.equal(r.imported, false);
      assert.equal(r.added, 0);
      assert.equal(r.errors.length, 3);
      assert.match(r.errors[0]!, new RegExp(`^${escape(file)}:3: "not-an-address" is not an email address`));
      assert.match(r.errors[1]!, new RegExp(`^${escape(file)}:5: "Bob <bob@example.org>" is not a plain address`));
      assert.match(r.errors[2]!, new RegExp(`^${escape(file)}:6: subscribed_at "yesterday" is not a date`));
      assert.equal(total(), 0, 'nothing was written');
    });

    it('with skipInvalid, imports the valid rows and still reports the bad ones', () => {
      const file = csv(
        'mixed.csv',
        'email,created_at\nann@example.org,2024-01-31\nbad@@example.org,\nbob@example.org,2023-12-24T08:00:00Z\n',
      );
      const r = importCsv(app.store, file, { skipInvalid: true });
      assert.equal(r.imported, true);
      assert.equal(r.added, 2);
      assert.equal(r.errors.length, 1);
      assert.match(r.errors[0]!, /:3: "bad@@example.org" is not a valid email address/);
      assert.equal(app.store.subscribers.byEmail('ann@example.org')?.createdAt, '2024-01-31T00:00:00.000Z');
      assert.equal(app.store.subscribers.byEmail('bob@example.org')?.createdAt, '2023-12-24T08:00:00.000Z');
      assert.equal(total(), 2);
    });

    it('imports nothing from a file whose header has no email column', () => {
      for (const text of ['mail,name\nann@example.org,Ann\n', 'ann@example.org\nbob@example.org\n', '']) {
        const file = csv('header.csv', text);
        assert.throws(
          () => importCsv(app.store, file),
          (err: unknown) => {
            assert.ok(err instanceof CsvError);
            assert.match(
              err.message,
              new RegExp(`^${escape(file)}: line 1 must be a header with an "email" column .*; nothing was imported$`),
            );
            return true;
          },
        );
      }
      assert.equal(total(), 0);
    });

    it('reports a missing file and malformed CSV clearly', () => {
      assert.throws(
        () => importCsv(app.store, path.join(project.dir, 'nope.csv')),
        /nope\.csv: cannot read \(ENOENT\)/,
      );
      assert.throws(
        () => importCsv(app.store, csv('broken.csv', 'email\n"ann@example.org\n')),
        (err: unknown) => err instanceof CsvError && /broken\.csv: not valid CSV/.test(err.message),
      );
      assert.equal(total(), 0);
    });

    it('look-alike spellings of one address (fullwidth, invisible characters, punycode) are one subscriber', () => {
      const spellings = [
        'ann@example.org',
        'ann@\uff45xample.org',
        'ann\u200b@example.org',
        'a\u00adnn@example.org',
        'ann\u200d@example.org',
        'ann@exam\u2060ple.org',
        'ann@b\u00fccher.example',
        'ann@xn--bcher-kva.example',
      ];
      const r = importCsv(app.store, csv('alike.csv', `email\n${spellings.join('\n')}\n`));
      assert.deepEqual(
        { added: r.added, duplicatesInFile: r.duplicatesInFile, errors: r.errors },
        { added: 2, duplicatesInFile: 6, errors: [] },
      );
      for (const email of spellings)
        assert.equal(addSubscriber(app.store, email).created, false, JSON.stringify(email));
      assert.deepEqual(
        [...app.store.subscribers.iterate()].map((s) => s.email),
        ['ann@example.org', 'ann@b\u00fccher.example'],
      );
      assert.equal(importCsv(app.store, csv('alike2.csv', 'email\n\uff41nn@EXAMPLE.org\n')).added, 0);
      assert.equal(total(), 2);
    });

    it('handles a byte-order mark and CRLF line ends, as spreadsheets write them', () => {
      const r = importCsv(app.store, csv('excel.csv', '\ufeffEmail\r\nann@example.org\r\nbob@example.org\r\n'));
      assert.equal(r.added, 2);
    });
  });

  describe('export', () => {
    const seed = () => {
      importCsv(app.store, csv('seed.csv', 'email\nann@example.org\nbob@example.org\n'));
      app.store.subscribers.create({ email: 'pat@example.org', status: 'pending' });
      removeSubscriber(app.store, 'bob@example.org');
    };

    it('writes CSV with a header and one row per subscriber, optionally by status', () => {
      seed();
      const rows = parse<Record<string, string>>(exported('csv'), { columns: true });
      assert.deepEqual(Object.keys(rows[0]!), [
        'email',
        'status',
        'created_at',
        'confirmed_at',
        'unsubscribed_at',
        'position',
        'source',
      ]);
      assert.deepEqual(
        rows.map((r) => [r.email, r.status]),
        [
          ['ann@example.org', 'active'],
          ['bob@example.org', 'unsubscribed'],
          ['pat@example.org', 'pending'],
        ],
      );
      assert.ok(rows[1]!.unsubscribed_at);
      const active = parse<Record<string, string>>(exported('csv', 'active'), { columns: true });
      assert.deepEqual(
        active.map((r) => r.email),
        ['ann@example.org'],
      );
    });

    it('writes JSON that parses to the same rows', () => {
      seed();
      const json = JSON.parse(exported('json')) as Array<Record<string, unknown>>;
      const csvRows = parse<Record<string, string>>(exported('csv'), { columns: true });
      assert.equal(json.length, 3);
      assert.deepEqual(
        json.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)]))),
        csvRows,
      );
      assert.deepEqual(JSON.parse(exported('json', 'pending')), [json[2]]);
    });

    it('an empty list is still a header or valid JSON', () => {
      assert.equal(exported('csv'), 'email,status,created_at,confirmed_at,unsubscribed_at,position,source\n');
      assert.deepEqual(JSON.parse(exported('json')), []);
    });

    it('neutralises cells a spreadsheet would run as a formula, and imports them back as they were', () => {
      const risky = [
        '=1+2@example.org',
        "=cmd|'/C_calc'!A0@example.org",
        '+cmd@example.org',
        '-x@example.org',
        "'=quoted@example.org",
      ];
      for (const email of risky) addSubscriber(app.store, email);
      addSubscriber(app.store, 'plain@example.org');
      const text = exported('csv');
      const rows = parse<Record<string, string>>(text, { columns: true });
      assert.deepEqual(
        rows.map((r) => r.email),
        [
          "'=1+2@example.org",
          "'=cmd|'/C_calc'!A0@example.org",
          "'+cmd@example.org",
          "'-x@example.org",
          "''=quoted@example.org",
          'plain@example.org',
        ],
      );
      // Every cell, not only the address: none starts with a character a spreadsheet evaluates.
      for (const r of rows)
        for (const [k, v] of Object.entries(r)) assert.doesNotMatch(v, /^[=+\-@\t\r]/, `${k}: ${v}`);
      // JSON is not opened as a spreadsheet: it keeps the stored values.
      assert.deepEqual(
        (JSON.parse(exported('json')) as Array<{ email: string }>).map((r) => r.email),
        [...risky, 'plain@example.org'],
      );

      app.store.close();
      project.cleanup();
      project = makeProject();
      app = project.open();
      const r = importCsv(app.store, csv('round.csv', text));
      assert.deepEqual({ added: r.added, errors: r.errors }, { added: risky.length + 1, errors: [] });
      assert.deepEqual(
        [...app.store.subscribers.iterate()].map((s) => s.email),
        [...risky, 'plain@example.org'],
      );
    });

    it('an exported CSV imports back into a fresh database as the same active list', () => {
      seed();
      const text = exported('csv', 'active');
      app.store.close();
      project.cleanup();
      project = makeProject();
      app = project.open();
      const r = importCsv(app.store, csv('round.csv', text));
      assert.equal(r.added, 1);
      assert.deepEqual(r.ignoredColumns, ['status', 'confirmed_at', 'unsubscribed_at', 'position', 'source']);
    });
  });

  describe('show and forget (access and erasure requests)', () => {
    const withHistory = () => {
      const { subscriber } = addSubscriber(app.store, 'reader@example.org');
      const other = addSubscriber(app.store, 'other@example.org').subscriber;
      for (const n of [1, 2]) {
        const claim = app.store.deliveries.claim(subscriber.id, n, null)!;
        app.store.deliveries.markSent(claim.id, `<i${n}.reader@example.org>`);
      }
      const otherClaim = app.store.deliveries.claim(other.id, 1, null)!;
      app.store.deliveries.markSent(otherClaim.id, '<i1.other@example.org>');
      const token = app.store.tokens.issue(subscriber.id, 48);
      return { subscriber, other, token };
    };

    it('show returns every field held about the subscriber and their delivery history', () => {
      const { subscriber } = withHistory();
      const shown = JSON.parse(JSON.stringify(showSubscriber(app.store, 'Reader@example.org'))) as ReturnType<
        typeof showSubscriber
      >;
      assert.deepEqual(shown.subscriber, app.store.subscribers.get(subscriber.id));
      for (const key of [
        'email',
        'status',
        'createdAt',
        'confirmedAt',
        'consentIp',
        'consentAt',
        'confirmIp',
        'feedToken',
        'position',
        'source',
      ]) {
        assert.ok(key in shown.subscriber, `show includes ${key}`);
      }
      assert.deepEqual(
        shown.deliveries.map((d) => [d.installment, d.status, d.messageId, typeof d.sentAt]),
        [
          [1, 'sent', '<i1.reader@example.org>', 'string'],
          [2, 'sent', '<i2.reader@example.org>', 'string'],
        ],
      );
      assert.throws(
        () => showSubscriber(app.store, 'nobody@example.org'),
        /no subscriber with address nobody@example\.org/,
      );
    });

    it('forget deletes the subscriber, their deliveries and tokens, and nobody else', () => {
      const { subscriber, other, token } = withHistory();
      assert.deepEqual(forgetSubscriber(app.store, 'reader@example.org'), {
        email: 'reader@example.org',
        deliveries: 2,
      });
      assert.equal(app.store.subscribers.byEmail('reader@example.org'), undefined);
      assert.equal(app.store.subscribers.get(subscriber.id), undefined);
      assert.deepEqual(app.store.deliveries.forSubscriber(subscriber.id), []);
      assert.deepEqual(app.store.tokens.check(token), { ok: false, reason: 'unknown' });
      assert.equal(app.store.subscribers.get(other.id)?.status, 'active');
      assert.equal(app.store.deliveries.forSubscriber(other.id).length, 1);
      assert.throws(() => forgetSubscriber(app.store, 'reader@example.org'), /no subscriber with address/);
      // The address can come back later as a brand-new subscriber.
      assert.equal(addSubscriber(app.store, 'reader@example.org').created, true);
    });
  });

  describe('add', () => {
    it('makes a pending, bounced or unsubscribed reader active again: confirmed, bounces forgiven, place in the story kept', () => {
      const pending = app.store.subscribers.create({ email: 'pending@example.org', status: 'pending' });
      const bounced = app.store.subscribers.create({ email: 'bounced@example.org', status: 'active' });
      app.store.subscribers.advance(bounced.id, 2);
      assert.equal(app.store.subscribers.recordHardBounce(bounced.id, 1), true);
      const gone = app.store.subscribers.create({ email: 'gone@example.org', status: 'active' });
      app.store.subscribers.unsubscribe(gone.id);

      for (const { id, email } of [pending, bounced, gone]) {
        const { subscriber, created } = addSubscriber(app.store, email.toUpperCase());
        assert.equal(created, false);
        assert.equal(subscriber.id, id);
        assert.equal(subscriber.status, 'active');
        assert.ok(subscriber.confirmedAt, `${email} counts as confirmed`);
        assert.equal(subscriber.hardBounces, 0);
        assert.equal(subscriber.unsubscribedAt, null);
      }
      assert.equal(
        app.store.subscribers.get(bounced.id)!.position,
        2,
        'a returning reader is not sent the story again from the start',
      );
      assert.equal(
        app.store.subscribers.recordHardBounce(bounced.id, 2),
        false,
        'one new bounce does not count the forgiven ones',
      );
    });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
