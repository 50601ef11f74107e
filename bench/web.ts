// How fast the pages readers open most are served, against a bare fastify "hello" on the
// same machine in the same run: the home page and an installment page of a story with 50
// published installments (requests/second and p99 latency, 50 connections). Every request
// is a first visit (no cookie: a new CSRF secret each time); then the same page for a
// returning visitor whose copy is current (their cookie and its ETag: a 304).
//   node --import tsx bench/web.ts [published-installments=50] [seconds=5] [rounds=3]
// Talks to 127.0.0.1 only: the real server, on a free port, over a throwaway project.
import Fastify from 'fastify';
import { startServing } from '../src/commands/serve.ts';
import { createLogger } from '../src/log.ts';
import { generatedStory, makeProject } from '../test/helpers/project.ts';
import { autocannon } from './autocannon.ts';

const PUBLISHED = Number(process.argv[2] ?? 50);
const SECONDS = Number(process.argv[3] ?? 5);
const ROUNDS = Number(process.argv[4] ?? 3);
const PARAGRAPHS = Math.ceil((PUBLISHED * 1150 * 1.05) / 60);

async function load(
  url: string,
  expected = '200',
  headers?: Record<string, string>,
): Promise<{ rps: number; p99: number }> {
  // A worker thread: the load generator must not share the server's event loop.
  const r = await autocannon({ url, connections: 50, duration: SECONDS, workers: 1, headers });
  const statuses = Object.keys(r.statusCodeStats).join();
  if (statuses !== expected || r.errors > 0)
    throw new Error(`${url}: expected only ${expected}, got ${statuses}, ${r.errors} errors`);
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
      `${PUBLISHED} published installments; autocannon, 50 connections, ${SECONDS} s each, ${ROUNDS} rounds paired with a bare fastify hello (medians)`,
    );
    // Other programs on the machine come and go: each figure is the median of paired rounds,
    // the side that goes first alternating, and the ratio the median of the rounds' ratios.
    const compare = async (what: string, url: string, expected?: string, headers?: Record<string, string>) => {
      const rounds: Array<{ page: { rps: number; p99: number }; hello: { rps: number } }> = [];
      for (let i = 0; i < ROUNDS; i++) {
        const helloFirst = i % 2 === 0;
        const hello = helloFirst ? await load(bareUrl) : undefined;
        const page = await load(url, expected, headers);
        rounds.push({ page, hello: hello ?? (await load(bareUrl)) });
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
      const rps = median(rounds.map((r) => r.page.rps));
      const p99 = median(rounds.map((r) => r.page.p99));
      const hello = median(rounds.map((r) => r.hello.rps));
      const ratio = median(rounds.map((r) => r.page.rps / r.hello.rps));
      console.log(
        `  ${what.padEnd(34)} ${rps.toFixed(0).padStart(6)} req/s  p99 ${String(p99).padStart(4)} ms` +
          `   bare hello ${hello.toFixed(0).padStart(6)} req/s   ratio ${ratio.toFixed(3)}`,
      );
    };
    for (const path of ['/', '/installments/1']) {
      const url = new URL(path, serving.url).href;
      await compare(`GET ${path}`, url);
      const first = await fetch(url);
      const revisit = {
        cookie: first.headers.getSetCookie()[0]!.split(';')[0]!,
        'if-none-match': first.headers.get('etag')!,
      };
      await compare(`GET ${path}, copy current`, url, '304', revisit);
    }
  } finally {
    await serving.stop();
  }
} finally {
  await bare.close();
  app.store.close();
  project.cleanup();
}
