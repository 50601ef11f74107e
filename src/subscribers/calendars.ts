// Each reader's own calendar: what they chose (store), what that means once the config's
// defaults fill the gaps, when it next sends, and the preferences form's rules. HTTP-free.
import {
  type Cadence,
  CADENCES,
  type Calendar,
  dayMask,
  dayNames,
  firstSlotFrom,
  formatTimeOfDay,
  instantOf,
  isTimeZone,
  localDate,
  nextSlot,
  parseTimeOfDay,
  WEEKDAY_NAMES,
  type WeekdayName,
} from '../calendar.ts';
import type { Config } from '../config.ts';
import type { ReaderCadence, ReaderChoices, Subscriber, SubscriberStore } from '../store/subscribers.ts';

/** How far ahead a pause may run: a reader back after a year is better asked again. */
export const MAX_PAUSE_DAYS = 366;

type CalendarConfig = Pick<Config, 'mode' | 'readers' | 'schedule'>;

/** The calendar a reader's choices come to, the config filling what they left open; null: the story's runs. */
export function effectiveCalendar(choices: ReaderChoices, config: CalendarConfig): Calendar | null {
  // Broadcast readers share one calendar unless they chose to read from the beginning at their own pace.
  const cadence: ReaderCadence = choices.cadence ?? (config.mode === 'broadcast' ? 'schedule' : config.readers.cadence);
  if (cadence === 'schedule') return null;
  const defaultDays = dayMask(config.readers.days);
  const days = choices.days ?? defaultDays;
  return {
    cadence,
    // Weekly is one day: the first chosen.
    days: cadence === 'weekly' ? days & -days : days,
    minute: choices.sendMinute ?? parseTimeOfDay(config.readers.time)!,
    timezone: choices.timezone ?? config.readers.timezone ?? config.schedule.timezone,
  };
}

/**
 * When a reader with these choices is next sent something, from `now`: their next slot, or
 * the first one on the day their pause ends. Null when they follow the story's runs.
 */
export function nextDue(choices: ReaderChoices, config: CalendarConfig, now: Date): string | null {
  const cal = effectiveCalendar(choices, config);
  if (!cal) return null;
  const paused = choices.pausedUntilAt !== null && choices.pausedUntilAt > now.toISOString();
  const at = paused ? firstSlotFrom(cal, choices.pausedUntil!) : nextSlot(cal, now.getTime());
  return at === null ? null : new Date(at).toISOString();
}

/**
 * The next slot of the config's default calendar, for readers who chose nothing; null when
 * that is the story's runs.
 */
export function defaultDue(config: CalendarConfig, now: Date): string | null {
  return nextDue(NO_CHOICES, config, now);
}

/** A reader who chose nothing: every choice follows the config's defaults. */
export const NO_CHOICES: Readonly<ReaderChoices> = {
  cadence: null,
  days: null,
  sendMinute: null,
  timezone: null,
  pausedUntil: null,
  pausedUntilAt: null,
};

/** What the form posts (strings, from an untrusted body). */
export type CalendarForm = Record<string, unknown>;

export type FormResult = { ok: true; choices: ReaderChoices } | { ok: false; errors: string[] };

const text = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(text) : typeof v === 'string' ? [v.trim()] : []);

/**
 * The form's choices, checked. Paced mode offers the story's schedule or a calendar; broadcast
 * offers the shared calendar ("only new installments") or one's own pace from the beginning.
 */
export function parseCalendarForm(form: CalendarForm, current: ReaderChoices, config: CalendarConfig): FormResult {
  const errors: string[] = [];
  const own = config.mode === 'broadcast' ? text(form.pace) === 'own' : true;
  const cadenceText = text(form.cadence);
  let cadence: ReaderCadence | null;
  if (config.mode === 'broadcast' && !own) cadence = null;
  else if (config.mode === 'paced' && cadenceText === 'schedule') cadence = 'schedule';
  else if ((CADENCES as readonly string[]).includes(cadenceText)) cadence = cadenceText as Cadence;
  else {
    errors.push('Choose how often you would like installments.');
    cadence = null;
  }
  const dayList = list(form.days);
  const unknownDay = dayList.find((d) => !(WEEKDAY_NAMES as readonly string[]).includes(d));
  if (unknownDay !== undefined) errors.push('Choose days of the week from the list.');
  let days = unknownDay === undefined ? dayMask(dayList as WeekdayName[]) : 0;
  if (cadence === 'weekly') {
    const weekday = text(form.weekday);
    if ((WEEKDAY_NAMES as readonly string[]).includes(weekday)) days = dayMask([weekday as WeekdayName]);
    else errors.push('Choose the day of the week for your weekly installment.');
  } else if (cadence === 'days' && days === 0) errors.push('Choose at least one day of the week.');
  const sendMinute = parseTimeOfDay(text(form.time));
  if (sendMinute === null) errors.push('Give the time of day as hours and minutes, such as 07:30.');
  const timezone = text(form.timezone);
  if (!isTimeZone(timezone)) errors.push('Choose your time zone from the list.');
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    choices: {
      cadence,
      days: cadence === 'days' || cadence === 'weekly' ? days : current.days,
      sendMinute,
      timezone,
      pausedUntil: current.pausedUntil,
      pausedUntilAt: current.pausedUntilAt,
    },
  };
}

/** What the preferences form shows for a reader: their choices, or the config's where they made none. */
export interface CalendarView {
  cadence: ReaderCadence;
  ownPace: boolean;
  days: WeekdayName[];
  weekday: WeekdayName;
  time: string;
  timezone: string;
  /** Set while paused: the local date deliveries start again. */
  pausedUntil: string | null;
  /** The next delivery of their own calendar, if they have one. */
  nextDueAt: string | null;
  /** Today in the reader's zone, the earliest pause end the form offers, and the latest. */
  today: string;
  maxPause: string;
}

export function calendarView(sub: Subscriber, config: CalendarConfig, now: Date): CalendarView {
  const c = sub.choices;
  const cal = effectiveCalendar(c, config);
  const days = dayNames(c.days ?? dayMask(config.readers.days));
  const timezone = c.timezone ?? config.readers.timezone ?? config.schedule.timezone;
  const cadence: ReaderCadence = cal?.cadence ?? 'schedule';
  return {
    cadence:
      config.mode === 'broadcast' && cadence === 'schedule'
        ? config.readers.cadence === 'schedule'
          ? 'daily'
          : config.readers.cadence
        : cadence,
    ownPace: config.mode === 'broadcast' ? cal !== null : true,
    days,
    weekday: days[0] ?? 'monday',
    time: formatTimeOfDay(c.sendMinute ?? parseTimeOfDay(config.readers.time)!),
    timezone,
    pausedUntil: c.pausedUntilAt !== null && c.pausedUntilAt > now.toISOString() ? c.pausedUntil : null,
    nextDueAt: sub.nextDueAt,
    today: localDate(now.getTime(), timezone),
    maxPause: localDate(now.getTime() + MAX_PAUSE_DAYS * 86_400_000, timezone),
  };
}

export type PauseResult = { ok: true } | { ok: false; error: string };

/** Saves, pauses and resumes a reader's calendar; every change recomputes their next delivery. */
export class ReaderCalendars {
  constructor(
    private readonly deps: {
      subscribers: Pick<SubscriberStore, 'setChoices'>;
      config: CalendarConfig;
      clock?: () => Date;
    },
  ) {}

  private now(): Date {
    return this.deps.clock?.() ?? new Date();
  }

  private save(sub: Subscriber, choices: ReaderChoices): void {
    this.deps.subscribers.setChoices(sub.id, choices, nextDue(choices, this.deps.config, this.now()));
  }

  update(sub: Subscriber, form: CalendarForm): FormResult {
    const result = parseCalendarForm(form, sub.choices, this.deps.config);
    if (result.ok) this.save(sub, result.choices);
    return result;
  }

  /** Pauses until the start of `date` (YYYY-MM-DD) in the reader's zone: nothing is sent before. */
  pause(sub: Subscriber, dateInput: unknown): PauseResult {
    const date = text(dateInput);
    const view = calendarView(sub, this.deps.config, this.now());
    const valid =
      /^\d{4}-\d{2}-\d{2}$/.test(date) &&
      !Number.isNaN(Date.parse(`${date}T00:00:00Z`)) &&
      new Date(`${date}T00:00:00Z`).toISOString().startsWith(date);
    if (!valid) return { ok: false, error: 'Give the date to start again as a calendar date.' };
    if (date <= view.today) return { ok: false, error: 'Choose a date after today to pause until.' };
    if (date > view.maxPause)
      return { ok: false, error: `A pause can last up to ${MAX_PAUSE_DAYS} days; choose an earlier date.` };
    const [y, m, d] = date.split('-').map(Number) as [number, number, number];
    const startsAt = new Date(instantOf(y, m, d, 0, view.timezone)).toISOString();
    this.save(sub, {
      ...sub.choices,
      timezone: sub.choices.timezone ?? view.timezone,
      pausedUntil: date,
      pausedUntilAt: startsAt,
    });
    return { ok: true };
  }

  resume(sub: Subscriber): void {
    this.save(sub, { ...sub.choices, pausedUntil: null, pausedUntilAt: null });
  }
}
