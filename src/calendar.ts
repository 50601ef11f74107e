// A reader's own delivery calendar: on which days, at what time of day, in which time zone.
// Only Intl's time zone data is used (no library): the next slot is found by walking local
// dates and turning each date's wall-clock time into an instant.
export type Cadence = 'daily' | 'weekdays' | 'days' | 'weekly';

export const CADENCES: readonly Cadence[] = ['daily', 'weekdays', 'days', 'weekly'];

/** Day bits, Sunday = bit 0 as Date.getUTCDay() counts. */
export const WEEKDAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;
export type WeekdayName = (typeof WEEKDAY_NAMES)[number];
export const ALL_DAYS = 0b1111111;
export const MONDAY_TO_FRIDAY = 0b0111110;

export interface Calendar {
  cadence: Cadence;
  /** Bit mask of weekdays for 'days' (any) and 'weekly' (exactly one); ignored otherwise. */
  days: number;
  /** Minutes after local midnight. */
  minute: number;
  /** IANA zone name. */
  timezone: string;
}

export function daysOf(cal: Pick<Calendar, 'cadence' | 'days'>): number {
  if (cal.cadence === 'daily') return ALL_DAYS;
  if (cal.cadence === 'weekdays') return MONDAY_TO_FRIDAY;
  return cal.days & ALL_DAYS;
}

export const dayMask = (names: readonly WeekdayName[]): number =>
  names.reduce((mask, n) => mask | (1 << WEEKDAY_NAMES.indexOf(n)), 0);

export const dayNames = (mask: number): WeekdayName[] => WEEKDAY_NAMES.filter((_, i) => mask & (1 << i));

/** "07:30" → 450; null unless HH:MM with a real hour and minute. */
export function parseTimeOfDay(text: string): number | null {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
}

export const formatTimeOfDay = (minute: number): string =>
  `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;

export function isTimeZone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** One formatter per zone: constructing them is the costly part. */
function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall clock in `zone` at instant `ms`. */
export function wallClock(ms: number, zone: string): Wall {
  const out: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(ms)) if (p.type !== 'literal') out[p.type] = Number(p.value);
  return {
    year: out.year!,
    month: out.month!,
    day: out.day!,
    hour: out.hour!,
    minute: out.minute!,
    second: out.second!,
  };
}

/** Local time minus UTC at instant `ms`, in ms (whole seconds: what the zone data holds). */
function offsetAt(ms: number, zone: string): number {
  const w = wallClock(ms, zone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant a wall-clock time names in `zone`. A time that happens twice (clocks going
 * back) is its first occurrence; a time that never happens (clocks going forward) is moved
 * on by the gap, as calendars do: 02:30 on the spring-forward night becomes 03:30.
 */
export function instantOf(year: number, month: number, day: number, minuteOfDay: number, zone: string): number {
  const wall = Date.UTC(year, month - 1, day, Math.floor(minuteOfDay / 60), minuteOfDay % 60);
  // A zone changes its offset at most once in any two days: the offsets a day either side bound it.
  const before = offsetAt(wall - 86_400_000, zone);
  const after = offsetAt(wall + 86_400_000, zone);
  const candidates = [wall - before, wall - after].filter((t) => t + offsetAt(t, zone) === wall);
  return candidates.length > 0 ? Math.min(...candidates) : wall - before;
}

/**
 * The first slot of the calendar strictly after `after` (ms), or null for a calendar with
 * no day at all. Looks at most eight local dates ahead: every day set repeats within a week.
 */
export function nextSlot(cal: Calendar, after: number): number | null {
  const days = daysOf(cal);
  if (days === 0) return null;
  const today = wallClock(after, cal.timezone);
  for (let i = 0; i <= 8; i++) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + i));
    if (!(days & (1 << date.getUTCDay()))) continue;
    const at = instantOf(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), cal.minute, cal.timezone);
    if (at > after) return at;
  }
  return null;
}

/** The first slot on or after local midnight of `date` (YYYY-MM-DD) in the calendar's zone: where a pause ends. */
export function firstSlotFrom(cal: Calendar, date: string): number | null {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  return nextSlot(cal, instantOf(y, m, d, 0, cal.timezone) - 1);
}

/** The local date (YYYY-MM-DD) of an instant in a zone. */
export function localDate(ms: number, zone: string): string {
  const w = wallClock(ms, zone);
  return `${w.year}-${String(w.month).padStart(2, '0')}-${String(w.day).padStart(2, '0')}`;
}
