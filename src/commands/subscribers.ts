import type { Store } from '../store/index.ts';
import type { SubscriberStatus } from '../store/subscribers.ts';
import { formatTable } from './table.ts';

const day = (iso: string | null) => (iso ? iso.slice(0, 10) : '');

export function subscribersTable(store: Store, status?: SubscriberStatus): string {
  const rows: Array<Array<string | number>> = [];
  for (const s of store.subscribers.iterate(status ? { status } : {})) {
    rows.push([s.id, s.email, s.status, day(s.createdAt), day(s.confirmedAt), s.position, s.source]);
  }
  const counts = store.subscribers.countByStatus();
  const footer = `${rows.length} shown; ${Object.entries(counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ')}`;
  return rows.length
    ? `${formatTable(['Id', 'Email', 'Status', 'Created', 'Confirmed', 'Position', 'Source'], rows)}\n\n${footer}`
    : footer;
}
