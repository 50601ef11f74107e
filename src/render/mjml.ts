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
 * resolve from.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const mjml2html = require(workerData.mjml);
parentPort.on('message', ({ id, source, filePath }) => {
  mjml2html(source, { validationLevel: 'strict', fonts: {}, keepComments: false, filePath }).then(
    ({ html }) => parentPort.postMessage({ id, html }),
    (err) => parentPort.postMessage({ id, error: err.message }),
  );
});`;
const MJML_PATH = createRequire(import.meta.url).resolve('mjml');

type Pending = { resolve: (html: string) => void; reject: (err: Error) => void };

let worker: Worker | undefined;
let idle: NodeJS.Timeout | undefined;
let nextId = 0;
const pending = new Map<number, Pending>();

function failAll(err: Error): void {
  for (const p of pending.values()) p.reject(err);
  pending.clear();
}

function start(): Worker {
  const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { mjml: MJML_PATH } });
  w.on('message', (m: { id: number; html?: string; error?: string }) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) p?.reject(new Error(m.error));
    else p?.resolve(m.html!);
    if (!pending.size) {
      // Idle, it must not keep a finished process alive while the stop timer runs.
      w.unref();
      scheduleStop(w);
    }
  });
  w.on('error', (err) => failAll(err));
  w.on('exit', (code) => {
    if (worker === w) worker = undefined;
    if (pending.size) failAll(new Error(`the MJML worker stopped (exit code ${code})`));
  });
  return w;
}

function scheduleStop(w: Worker): void {
  clearTimeout(idle);
  idle = setTimeout(() => {
    if (worker === w && !pending.size) {
      worker = undefined;
      void w.terminate();
    }
  }, IDLE_MS);
  idle.unref();
}

/**
 * The HTML MJML makes of `source` (strict validation, no web fonts, no comments).
 * `filePath` is the template it came from: errors name it, and mj-include is relative to it.
 */
export function compileMjml(source: string, filePath: string): Promise<string> {
  clearTimeout(idle);
  worker ??= start();
  worker.ref();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker!.postMessage({ id, source, filePath });
  });
}

/** Whether the compiler is loaded now: it should not be, a moment after the last compile. */
export const mjmlWorkerRunning = (): boolean => worker !== undefined;
