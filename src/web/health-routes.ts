import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/index.ts';

/** For load balancers and systemd watchdogs: 200 when the database answers, 503 when not. */
export function healthRoutes(store: Store) {
  return (server: FastifyInstance) => {
    server.get('/healthz', (_req, reply) => {
      try {
        store.ping();
        return reply.send({ status: 'ok', db: 'ok' });
      } catch (err) {
        return reply.code(503).send({ status: 'error', db: String(err) });
      }
    });
  };
}
