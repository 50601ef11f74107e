// MJML compiles each template once per installment, then a send may run for hours filling
// the result; but the compiler and its dependencies weigh some 50 MB of memory once loaded,
// and Node cannot unload a module. So MJML runs in a worker thread that is started on
// demand and ends when idle, giving that memory back for the rest of the run.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Long enough for the handful of templates one send or page view needs to share a worker. */
const IDLE_MS = 2_000;

/**
 * The worker's whole program. Plain JavaScript given inline, so it runs the same from the
 * built package and from the TypeScript sources (a worker does not inherit tsx's loader);
 * MJML's path is resolved here, as a worker from a string has no module of its own to
 * resolve from. MJML's HTML parser (cheerio) loads an HTTP client, undici, at start for
 * fetching pages by URL, which a compile never does: 2 MB of source and about 10 MB of a
 * send's peak, at the compile (bench/send.ts). It gets an empty module instead.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Module = require('node:module');
const load = Module._load;
let mjml2html;
Module._load = function (request, ...rest) {
  return request === 'undici' ? {} : load.call(this, request, ...rest);
};
try {
  mjml2html = require(workerData.mjml);
} finally {
  Module._load = load;
}
parentPort.on('message', ({ id, source, filePath }) => {
  mjml2html(source, { validationLevel: 'strict', fonts: {}, keepComments: false, filePath }).then(
    ({ html }) => parentPort.postMessage({ id, html }),
    (err) => parentPort.postMessage({ id, error: String((err && err.message) || err) }),
  );
});`;
const MJML_PATH = createRequire(import.meta.url).resolve('mjml');

/** MJML refused the source: the template's fault, unlike a worker that failed to run. */
export class MjmlError extends Error {}

type Pending = { resolve: (html: string) => void; reject: (err: Error) => void };

/** A worker and the jobs sent to it: a worker that dies fails its own jobs, never a successor's. */
interface Compiler {
  worker: Worker;
  pending: Map<number, Pending>;
  idle?: NodeJS.Timeout;
}

let current: Compiler | undefined;
let nextId = 0;

function retire(c: Compiler, err?: Error): void {
  if (current === c) current = undefined;
  clearTimeout(c.idle);
  if (err) for (const p of c.pending.values()) p.reject(err);
  c.pending.clear();
}

function start(): Compiler {
  // A compile makes short-lived garbage: a small young generation keeps the worker's share
  // of a send's peak memory down (about 15 MB of 180).
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { mjml: MJML_PATH },
    resourceLimits: { maxYoungGenerationSizeMb: 4 },
  });
  const c: Compiler = { worker, pending: new Map() };
  c.worker.on('message', (m: { id: number; html?: string; error?: string }) => {
    const p = c.pending.get(m.id);
    c.pending.delete(m.id);
    if (m.error !== undefined) p?.reject(new MjmlError(m.error));
    else p?.resolve(m.html!);
    if (!c.pending.size) {
      // Idle, it must not keep a finished process alive while the stop timer runs.
      c.worker.unref();
      c.idle = setTimeout(() => {
        retire(c);
        void c.worker.terminate();
      }, IDLE_MS);
      c.idle.unref();
    }
  });
  c.worker.on('error', (err) => retire(c, err));
  c.worker.on('exit', (code) => retire(c, new Error(`the MJML worker stopped (exit code ${code})`)));
  return c;
}

/**
 * The HTML MJML makes of `source` (strict validation, no web fonts, no comments).
 * `filePath` is the template it came from: errors name it, and mj-include is relative to it.
 * Rejects with MjmlError when MJML refuses the source.
 */
export function compileMjml(source: string, filePath: string): Promise<string> {
  const c = (current ??= start());
  clearTimeout(c.idle);
  c.worker.ref();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    c.pending.set(id, { resolve, reject });
    c.worker.postMessage({ id, source, filePath });
  });
}

/**
 * Ends the worker now rather than after its idle time, once nothing more will be compiled
 * for a while: a send that has composed its emails frees that memory before it starts
 * sending, instead of holding both at its peak. A compile asked for later starts a new one.
 */
export function releaseMjml(): void {
  const c = current;
  if (!c || c.pending.size) return;
  retire(c);
  void c.worker.terminate();
}

/** Whether the compiler is loaded now: it should not be, a moment after the last compile. */
export const mjmlWorkerRunning = (): boolean => current !== undefined;
