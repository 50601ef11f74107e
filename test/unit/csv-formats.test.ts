// `subscribers import` reads the subscriber exports of the services authors come from, as
// they download them: the address column under its own name, the sign-up date kept, and
// readers the file says have left (unsubscribed, blocklisted, emails off) not imported.
// The sample files in test/fixtures/csv are made up, in each service's export columns.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/config.ts';
import { importCsv } from '../../src/subscribers/admin.ts';
import { makeProject, type Project } from '../helpers/project.ts';

const fixture = (name: string) => path.join(PACKAGE_ROOT, 'test', 'fixtures', 'csv', name);
const projects: Project[] = [];
after(() => projects.forEach((p) => p.cleanup()));

function importInto(file: string) {
  const project = makeProject();
  projects.push(project);
  const app = project.open();
  try {
    const report = importCsv(app.store, fixture(file));
    const active = [...app.store.subscribers.iterate({ status: 'active' })].map((s) => ({
      email: s.email,
      createdAt: s.createdAt,
    }));
    return { report, active };
  } finally {
    app.store.close();
  }
}

const cases: Array<{ service: string; file: string; added: Array<[string, string]>; left: number }> = [
  {
    service: 'Mailchimp (subscribed)',
    file: 'mailchimp-subscribed.csv',
    added: [
      ['ada.quill@example.org', '2024-03-01'],
      ['Basil.Fenn@example.org', '2024-05-17'],
    ],
    left: 0,
  },
  { service: 'Mailchimp (unsubscribed)', file: 'mailchimp-unsubscribed.csv', added: [], left: 1 },
  {
    service: 'Substack',
    file: 'substack.csv',
    added: [
      ['dora.vale@example.net', '2024-01-15'],
      ['eli.marsh@example.net', '2024-02-01'],
    ],
    left: 1,
  },
  {
    service: 'Buttondown',
    file: 'buttondown.csv',
    added: [
      ['gus.heron@example.com', '2023-06-01'],
      ['hana.reed@example.com', '2023-07-04'],
    ],
    left: 2,
  },
  { service: 'Ghost', file: 'ghost.csv', added: [['kit.moss@example.org', '2023-10-30']], left: 1 },
  { service: 'listmonk', file: 'listmonk.csv', added: [['mira.stone@example.com', '2024-04-02']], left: 1 },
];

describe('subscribers import: the export files of other services', () => {
  for (const c of cases) {
    test(`${c.service}: ${c.file}`, () => {
      const { report, active } = importInto(c.file);
      assert.deepEqual(report.errors, []);
      assert.equal(report.imported, true);
      assert.equal(report.added, c.added.length);
      assert.equal(report.notSubscribed, c.left, 'rows the file marks as gone are skipped');
      assert.deepEqual(
        active.map((s) => [s.email, s.createdAt.slice(0, 10)]).sort(),
        c.added.sort(),
        'the addresses, with the date they signed up there',
      );
    });
  }

  test('a file without any address column still says which headers it takes', () => {
    const project = makeProject();
    projects.push(project);
    const app = project.open();
    try {
      assert.throws(
        () => importCsv(app.store, fixture('../stories/untitled.txt')),
        /"email" column \(or an export's own, such as Mailchimp's "Email Address"\)/,
      );
    } finally {
      app.store.close();
    }
  });
});
