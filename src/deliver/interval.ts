// Broadcast sends the next installment to every reader: a second `send` right after the
// first would put two installments in every inbox at once (a whole story in seconds). A new
// broadcast run is refused within a minimum interval of the last one unless forced.
import cron from 'node-cron';
import type { Config } from '../config.ts';
import type { Run, RunKind } from '../store/runs.ts';

const HOUR_MS = 3_600_000;
/** With no schedule to go by, two runs within half a day are almost surely a mistake. */
const UNSCHEDULED_MIN_MS = 12 * HOUR_MS;
/** Upcoming runs looked at for the schedule's shortest period ("0 7 * * 1,4" alternates 3 and 4 days). */
const PERIODS_SAMPLED = 14;

/** The configured minimum, else half the schedule's shortest period, else 12 hours. */
export function minIntervalMs(schedule: Config['schedule']): number {
  if (schedule.minIntervalHours !== undefined) return schedule.minIntervalHours * HOUR_MS;
  if (!schedule.enabled) return UNSCHEDULED_MIN_MS;
  const probe = cron.createTask(schedule.cron, () => undefined, { timezone: schedule.timezone });
  const times = probe.getNextRuns(PERIODS_SAMPLED + 1).map((d) => d.getTime());
  let period = Infinity;
  for (let i = 1; i < times.length; i++) period = Math.min(period, times[i]! - times[i - 1]!);
  return Number.isFinite(period) ? period / 2 : UNSCHEDULED_MIN_MS;
}

const human = (ms: number): string =>
  ms >= 2 * 86_400_000
    ? `${+(ms / 86_400_000).toFixed(1)} days`
    : ms >= 2 * HOUR_MS
      ? `${+(ms / HOUR_MS).toFixed(1)} hours`
      : `${Math.round(ms / 60_000)} minutes`;

/**
 * Why a new broadcast run of this kind may not start now, or null. Only a person's `send`
 * is checked: scheduled runs are the cadence itself, and a catch-up stands for one
 * scheduled time the server missed (the scheduler already makes up for it only once).
 */
export function tooSoonAfter(
  last: Run | undefined,
  opts: { kind: RunKind; force?: boolean; schedule: Config['schedule']; now?: Date },
): string | null {
  if (!last || opts.force || opts.kind !== 'manual') return null;
  const now = opts.now ?? new Date();
  const min = minIntervalMs(opts.schedule);
  const since = now.getTime() - Date.parse(last.startedAt);
  if (since >= min) return null;
  return (
    `the last run (run ${last.id}) started at ${last.startedAt}, ${human(since)} ago, ` +
    `within the minimum interval of ${human(min)} between broadcast runs (schedule.minIntervalHours); ` +
    'another run now would send every reader a second installment at once. ' +
    'Wait, or send anyway with: feuilleton send --force'
  );
}
