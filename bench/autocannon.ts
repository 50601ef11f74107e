// autocannon ships no types: this is the slice the benches use, typed once.
import { createRequire } from 'node:module';

export interface AutocannonResult {
  requests: { average: number };
  throughput: { average: number };
  latency: { p99: number };
  statusCodeStats: Record<string, { count: number }>;
  errors: number;
}

export const autocannon = createRequire(import.meta.url)('autocannon') as (opts: {
  url: string;
  connections: number;
  duration: number;
  workers?: number;
  headers?: Record<string, string>;
}) => Promise<AutocannonResult>;
