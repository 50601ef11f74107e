import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/index.ts';

// quick_check reads the whole file: a load balancer asking every few seconds would keep
// the disk busy, and corruption does not come and go by the second.
const INTEGRITY_CACHE_MS = 60_000;

/**
 * For load balancers and systemd watchdogs: 200 when the database file is sound and takes
 * a write, 503 with the reason when not (damaged file, full disk, read-only file system).
 */
export function healthRoutes(store: Pick<Store, 'checkIntegrity' | 'probeWrite'>, opts: { clock?: () => Date } = {}) {
  const clock = opts.clock ?? (() => new Date());
  let integrity: { at: number; problem: string | null } | undefined;

  const damage = (now: Date): string | null => {
    if (!integrity || now.getTime() - integrity.at >= INTEGRITY_CACHE_MS) {
      let problem: string | null;
      try {
        problem = store.checkIntegrity();
      } catch (err) {
        problem = `cannot be read (${(err as Error).message})`;
      }
      integrity = { at: now.getTime(), problem };
    }
    return integrity.problem && `database damaged: ${integrity.problem}`;
  };

  const writeFailure = (now: Date): string | null => {
    try {
      store.probeWrite(now);
      return null;
    } catch (err) {
      return `database cannot be written: ${(err as Error).message}`;
    }
  };

  return (server: FastifyInstance) => {
    server.get('/healthz', (_req, reply) => {
      const now = clock();
      const reason = damage(now) ?? writeFailure(now);
      return reason ? reply.code(503).send({ status: 'error', reason }) : reply.send({ status: 'ok' });
    });
  };
}
