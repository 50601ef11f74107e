// How long `subscribers import` takes for a large list: the same importCsv the CLI calls,
// into a fresh SQLite file, then again over the same file (the idempotent re-run).
//   node --import tsx bench/import.ts [rows=10000]
// Target: 10,000 rows in under 2 seconds.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { importCsv } from '../src/subscribers/admin.ts';
import { makeProject } from '../test/helpers/project.ts';

const ROWS = Number(process.argv[2] ?? 10_000);
const TARGET_SECONDS = 2;

const project = makeProject();
try {
  const file = path.join(project.dir, 'subscribers.csv');
  const lines = ['email,name,subscribed_at'];
  for (let i = 0; i < ROWS; i++)
    lines.push(`reader.${i}@example${i % 97}.org,Reader ${i},2024-0${1 + (i % 9)}-1${i % 10}`);
  writeFileSync(file, lines.join('\n') + '\n');

  const app = project.open();
  try {
    const measure = (label: string, expectAdded: number) => {
      const start = performance.now();
      const r = importCsv(app.store, file);
      const seconds = (performance.now() - start) / 1000;
      if (!r.imported || r.added !== expectAdded || r.errors.length)
        throw new Error(
          `${label}: expected ${expectAdded} added, got ${JSON.stringify({ ...r, errors: r.errors.slice(0, 3) })}`,
        );
      const verdict = seconds < TARGET_SECONDS ? 'under' : 'OVER';
      console.log(
        `  ${label.padEnd(22)} ${String(r.rows).padStart(7)} rows  ${seconds.toFixed(3).padStart(7)} s  ${Math.round(
          r.rows / seconds,
        )
          .toLocaleString('en')
          .padStart(9)} rows/s  (${verdict} the ${TARGET_SECONDS} s target)`,
      );
    };
    console.log(`CSV import into a fresh database (${path.basename(file)}, ${ROWS.toLocaleString('en')} rows)`);
    measure('first import', ROWS);
    measure('same file again', 0);
  } finally {
    app.store.close();
  }
} finally {
  project.cleanup();
}
