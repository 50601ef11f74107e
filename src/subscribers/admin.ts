// The author's side of the subscriber list: `feuilleton subscribers …`.
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { UserError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import { SUBSCRIBER_STATUSES, type Subscriber, type SubscriberStatus } from '../store/subscribers.ts';
import { normalizeEmail } from './address.ts';
import { calendarView, effectiveCalendar } from './calendars.ts';

export class CsvError extends UserError {}

export interface ImportReport {
  file: string;
  rows: number;
  added: number;
  alreadyPresent: number;
  duplicatesInFile: number;
  /** Rows the file itself marks as not subscribed (unsubscribed, blocklisted, emails off, never confirmed): skipped. */
  notSubscribed: number;
  errors: string[];
  ignoredColumns: string[];
  /** False when errors stopped the import: then nothing was written. */
  imported: boolean;
}

// Headers as other services export them (README, "Moving a list here"), compared after
// normalizing case, spaces, underscores and dashes. Mailchimp: "Email Address",
// OPTIN_TIME, CONFIRM_TIME, and UNSUB_TIME or CLEAN_TIME in its unsubscribed and cleaned
// files; Substack: email, created_at, email_disabled; Buttondown: email, creation_date,
// subscriber_type; Ghost: email, created_at, subscribed_to_emails; listmonk: email, status,
// created_at.
const EMAIL_COLUMNS = ['email', 'email address', 'e mail'];
/** The first of these present is the sign-up date. */
const DATE_COLUMNS = ['created at', 'subscribed at', 'creation date', 'optin time', 'confirm time', 'date'];
/** Columns whose value says a row is no willing reader. */
const GONE: Record<string, (value: string) => boolean> = {
  'email disabled': (v) => v === 'true',
  'subscribed to emails': (v) => v === 'false',
  'subscriber type': (v) =>
    ['unsubscribed', 'unactivated', 'removed', 'spammy', 'complained', 'undeliverable'].includes(v),
  // listmonk's, and this tool's own export (a pending reader never confirmed).
  status: (v) =>
    ['unsubscribed', 'blocklisted', 'blacklisted', 'cleaned', 'bounced', 'complained', 'disabled', 'pending'].includes(
      v,
    ),
  'unsub time': (v) => v !== '',
  'clean time': (v) => v !== '',
};

const headerKey = (h: string): string =>
  h
    .trim()
    .toLowerCase()
    .replace(/[\s_-]+/g, ' ');

/** ISO dates, and the forms exports write: "2024-03-01 10:00:00" and listmonk's "…+00" offsets. */
function parseDate(value: string): Date | undefined {
  for (const candidate of [value, value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')]) {
    const d = new Date(candidate);
    if (!Number.isNaN(d.getTime())) return d;
  }
  return undefined;
}

// A spreadsheet runs a cell that starts with one of these as a formula (CSV injection):
// export puts a ' in front, as OWASP advises, and import takes exactly one off again. A
// cell already starting with ' before one of them gets one more, so the round trip is exact.
const FORMULA_CELL = /^'*[=+\-@\t\r]/;
const asText = (cell: string): string => (FORMULA_CELL.test(cell) ? `'${cell}` : cell);
const fromText = (cell: string): string => (cell.startsWith("'") && FORMULA_CELL.test(cell) ? cell.slice(1) : cell);

/**
 * Imports active subscribers from a CSV with an `email` column, all or nothing: any bad
 * row (reported with its line number) stops the whole file unless skipInvalid is set.
 * Importing the same file twice adds nobody the second time.
 */
export function importCsv(store: Store, file: string, opts: { skipInvalid?: boolean } = {}): ImportReport {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CsvError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  // `info` gives each record's line number for error reports.
  let records: Array<{ record: string[]; info: { lines: number } }>;
  try {
    records = parse(text, {
      bom: true,
      skip_empty_lines: true,
      relax_column_count: true,
      trim: true,
      info: true,
    }) as unknown as typeof records;
  } catch (err) {
    throw new CsvError(`${file}: not valid CSV (${(err as Error).message})`);
  }
  const header = records[0]?.record ?? [];
  const keys = header.map(headerKey);
  const emailCol = keys.findIndex((k) => EMAIL_COLUMNS.includes(k));
  if (emailCol < 0) {
    throw new CsvError(
      `${file}: line 1 must be a header with an "email" column ` +
        `(or an export's own, such as Mailchimp's "Email Address"); ` +
        `found: ${header.length ? header.join(', ') : 'nothing'}; nothing was imported`,
    );
  }
  const dateKey = DATE_COLUMNS.find((k) => keys.includes(k));
  const dateCol = dateKey === undefined ? -1 : keys.indexOf(dateKey);
  const goneCols = keys.flatMap((k, i) => (GONE[k] ? [{ i, gone: GONE[k] }] : []));
  const report: ImportReport = {
    file,
    rows: records.length - 1,
    added: 0,
    alreadyPresent: 0,
    duplicatesInFile: 0,
    notSubscribed: 0,
    errors: [],
    ignoredColumns: header.filter((_, i) => i !== emailCol && i !== dateCol),
    imported: false,
  };
  const seen = new Set<string>();
  const rows: Array<{ email: string; createdAt?: string }> = [];
  for (const { record, info } of records.slice(1)) {
    if (goneCols.some(({ i, gone }) => gone((record[i] ?? '').toLowerCase()))) {
      report.notSubscribed++;
      continue;
    }
    const raw = fromText(record[emailCol] ?? '');
    let email: string;
    try {
      email = normalizeEmail(raw);
    } catch (err) {
      report.errors.push(`${file}:${info.lines}: ${(err as Error).message}`);
      continue;
    }
    const key = email.toLowerCase();
    if (seen.has(key)) {
      report.duplicatesInFile++;
      continue;
    }
    seen.add(key);
    let createdAt: string | undefined;
    if (dateCol >= 0 && record[dateCol]) {
      const d = parseDate(record[dateCol]);
      if (!d) {
        report.errors.push(
          `${file}:${info.lines}: ${header[dateCol]} "${record[dateCol]}" is not a date ` +
            '(use 2026-01-31 or an ISO timestamp)',
        );
        continue;
      }
      createdAt = d.toISOString();
    }
    rows.push({ email, createdAt });
  }
  if (report.errors.length > 0 && !opts.skipInvalid) return report;
  report.added = store.subscribers.importActive(rows, 'import');
  report.alreadyPresent = rows.length - report.added;
  report.imported = true;
  return report;
}

const EXPORT_COLUMNS = [
  'email',
  'status',
  'created_at',
  'confirmed_at',
  'unsubscribed_at',
  'position',
  'source',
] as const;

const exportRow = (s: Subscriber) => ({
  email: s.email,
  status: s.status,
  created_at: s.createdAt,
  confirmed_at: s.confirmedAt ?? '',
  unsubscribed_at: s.unsubscribedAt ?? '',
  position: s.position,
  source: s.source,
});

/** Streams the list out a page at a time; `write` gets CSV or JSON-lines-in-an-array text. */
export function exportSubscribers(
  store: Store,
  format: 'csv' | 'json',
  write: (chunk: string) => void,
  status?: SubscriberStatus,
): void {
  const filter = status ? { status } : {};
  if (format === 'csv') {
    write(stringify([[...EXPORT_COLUMNS]]));
    for (const s of store.subscribers.iterate(filter))
      write(stringify([EXPORT_COLUMNS.map((c) => asText(String(exportRow(s)[c])))]));
    return;
  }
  write('[');
  let first = true;
  for (const s of store.subscribers.iterate(filter)) {
    write((first ? '\n  ' : ',\n  ') + JSON.stringify(exportRow(s)));
    first = false;
  }
  write(first ? ']\n' : '\n]\n');
}

export function parseStatus(value: string | undefined): SubscriberStatus | undefined {
  if (value === undefined) return undefined;
  if (!(SUBSCRIBER_STATUSES as string[]).includes(value))
    throw new UserError(`--status must be one of ${SUBSCRIBER_STATUSES.join(', ')}, not "${value}"`);
  return value as SubscriberStatus;
}

function find(store: Store, emailInput: string): Subscriber {
  const email = normalizeEmail(emailInput);
  const sub = store.subscribers.byEmail(email);
  if (!sub) throw new UserError(`no subscriber with address ${email} (see "feuilleton subscribers list")`);
  return sub;
}

/** Adds an address as active: the author vouches for consent (e.g. a reader asked in person). */
export function addSubscriber(store: Store, emailInput: string): { subscriber: Subscriber; created: boolean } {
  const email = normalizeEmail(emailInput);
  const existing = store.subscribers.byEmail(email);
  if (existing) {
    if (existing.status !== 'active') store.subscribers.reactivate(existing.id);
    return { subscriber: store.subscribers.get(existing.id)!, created: false };
  }
  return { subscriber: store.subscribers.create({ email, status: 'active', source: 'cli' }), created: true };
}

export function removeSubscriber(store: Store, emailInput: string): Subscriber {
  const sub = find(store, emailInput);
  store.subscribers.unsubscribe(sub.id, 'author');
  return store.subscribers.get(sub.id)!;
}

/** GDPR erasure: the subscriber row, their tokens and their delivery history. */
export function forgetSubscriber(store: Store, emailInput: string): { email: string; deliveries: number } {
  const sub = find(store, emailInput);
  const deliveries = store.deliveries.forSubscriber(sub.id).length;
  store.subscribers.forget(sub.id);
  return { email: sub.email, deliveries };
}

/** Everything held about one subscriber (GDPR access request), and how they read: place and calendar. */
export function showSubscriber(
  store: Store,
  emailInput: string,
  config?: Parameters<typeof calendarView>[1],
): {
  subscriber: Subscriber;
  reading?: ReturnType<typeof readingOf>;
  deliveries: ReturnType<Store['deliveries']['forSubscriber']>;
} {
  const sub = find(store, emailInput);
  return {
    subscriber: sub,
    ...(config ? { reading: readingOf(store, sub, config) } : {}),
    deliveries: store.deliveries.forSubscriber(sub.id),
  };
}

function readingOf(store: Store, sub: Subscriber, config: Parameters<typeof calendarView>[1]) {
  const total = store.installments.count().total;
  const view = calendarView(sub, config, new Date());
  const own = effectiveCalendar(sub.choices, config) !== null;
  return {
    installment: sub.position,
    of: total,
    finished: total > 0 && sub.position >= total,
    calendar: own
      ? { cadence: view.cadence, days: view.days, time: view.time, timezone: view.timezone }
      : "the story's schedule",
    pausedUntil: view.pausedUntil,
    nextDueAt: sub.nextDueAt,
  };
}
