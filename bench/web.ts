// How fast the pages readers open most are served, against a bare fastify "hello" on the
// same machine in the same run: the home page and an installment page of a story with 50
// published installments (requests/second and p99 latency, 50 connections).
//   node --import tsx bench/web.ts [published-installments=50] [seconds=5]
// Talks to 127.0.0.1 only: the real server, on a free port, over a throwaway project.
import Fastify from 'fastify';
import { startServing } from '../src/commands/serve.ts';
import { createLogger } from '../src/log.ts';
import { generatedStory, makeProject } from '../test/helpers/project.ts';
import { autocannon } from './autocannon.ts';

const PUBLISHED = Number(process.argv[2] ?? 50);
const SECONDS = Number(process.argv[3] ?? 5);
const PARAGRAPHS = Math.ceil((PUBLISHED * 1150 * 1.05) / 60);

async function load(url: string): Promise<{ rps: number; p99: number }> {
  // A worker thread: the load generator must not share the server's event loop.
  const r = await autocannon({ url, connections: 50, duration: SECONDS, workers: 1 });
  const statuses = Object.keys(r.statusCodeStats).join();
  if (statuses !== '200' || r.errors > 0)
    throw new Error(`${url}: expected only 200, got ${statuses}, ${r.errors} errors`);
  return { rps: r.requests.average, p99: r.latency.p99 };
}

const bare = Fastify({ logger: false });
bare.get('/', () => 'hello');
const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });

const project = makeProject({ story: generatedStory(PARAGRAPHS) });
const app = project.open();
try {
  for (let n = 1; n <= PUBLISHED; n++)
    app.store.installments.markPublished(n, new Date(Date.UTC(2024, 0, 1) + n * 86_400_000).toISOString());
  const serving = await startServing(app, createLogger({ level: 'silent', pretty: false }), {
    host: '127.0.0.1',
    port: 0,
  });
  try {
    console.log(
      `${PUBLISHED} published installments; autocannon, 50 connections, ${SECONDS} s each, alternating with a bare fastify hello`,
    );
    for (const path of ['/', '/installments/1']) {
      const hello = await load(bareUrl);
      const page = await load(new URL(path, serving.url).href);
      console.log(
        `  GET ${path.padEnd(16)} ${page.rps.toFixed(0).padStart(6)} req/s  p99 ${String(page.p99).padStart(4)} ms   bare hello ${hello.rps.toFixed(0).padStart(6)} req/s   ratio ${(page.rps / hello.rps).toFixed(3)}`,
      );
    }
  } finally {
    await serving.stop();
  }
} finally {
  await bare.close();
  app.store.close();
  project.cleanup();
}
