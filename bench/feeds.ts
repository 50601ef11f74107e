// How fast the feeds are served, with and without a validator, and what rebuilding one
// costs. Readers poll forever, so the 304 path is the one that has to be cheap; the
// rebuild runs once per publication.
//   node --import tsx bench/feeds.ts [published-installments=500] [seconds=3]
// Talks to 127.0.0.1 only: the real server, on a free port, over a throwaway project.
import { performance } from 'node:perf_hooks';
import { startServing } from '../src/commands/serve.ts';
import { createLogger } from '../src/log.ts';
import { FeedCache, type FeedFormat } from '../src/publish/feeds.ts';
import { generatedStory, makeProject } from '../test/helpers/project.ts';
import { autocannon } from './autocannon.ts';

const PUBLISHED = Number(process.argv[2] ?? 500);
const SECONDS = Number(process.argv[3] ?? 3);
// generatedStory paragraphs average 60 words; installments default to ~1,150 (5 minutes).
const PARAGRAPHS = Math.ceil((PUBLISHED * 1150 * 1.05) / 60);

const project = makeProject({ story: generatedStory(PARAGRAPHS) });
const app = project.open();
try {
  const total = app.store.installments.count().total;
  if (total < PUBLISHED)
    throw new Error(`the generated story split into ${total} installments, fewer than ${PUBLISHED}`);
  for (let n = 1; n <= PUBLISHED; n++)
    app.store.installments.markPublished(n, new Date(Date.UTC(2024, 0, 1) + n * 86_400_000).toISOString());

  console.log(`feed of ${PUBLISHED} installments (full text)`);
  for (const format of ['rss', 'atom', 'json'] as FeedFormat[]) {
    const runs = 5;
    let bytes = 0;
    const start = performance.now();
    // A fresh cache each time: the database read and the whole build, as after a publication.
    for (let i = 0; i < runs; i++) bytes = new FeedCache(app).feed(format).body().length;
    console.log(
      `  regenerate ${format.padEnd(4)} ${((performance.now() - start) / runs).toFixed(1).padStart(7)} ms   ${(bytes / 1024).toFixed(0)} KiB`,
    );
  }

  const serving = await startServing(app, createLogger({ level: 'silent', pretty: false }), {
    host: '127.0.0.1',
    port: 0,
  });
  try {
    const url = new URL('/atom.xml', serving.url).href;
    const etag = (await fetch(url)).headers.get('etag')!;
    const measure = async (label: string, headers: Record<string, string> | undefined, expected: string) => {
      // A worker thread: the load generator must not share the server's event loop.
      const r = await autocannon({ url, connections: 10, duration: SECONDS, workers: 1, headers });
      const statuses = Object.entries(r.statusCodeStats)
        .map(([code, s]) => `${code}×${s.count}`)
        .join(' ');
      if (Object.keys(r.statusCodeStats).join() !== expected || r.errors > 0)
        throw new Error(`${label}: expected only ${expected}, got ${statuses}, ${r.errors} errors`);
      console.log(
        `  GET /atom.xml ${label.padEnd(19)} ${r.requests.average.toFixed(0).padStart(7)} req/s  ${(r.throughput.average / 2 ** 20).toFixed(0).padStart(4)} MiB/s  (${statuses})`,
      );
      return r.requests.average;
    };
    const full = await measure('(200, full body)', undefined, '200');
    const cached = await measure('If-None-Match (304)', { 'if-none-match': etag }, '304');
    console.log(`  ratio 304 / 200: ${(cached / full).toFixed(1)}×`);
  } finally {
    await serving.stop();
  }
} finally {
  app.store.close();
  project.cleanup();
}
