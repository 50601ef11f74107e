// A reader's next delivery time, across time zones at both extremes, half-hour offsets and
// DST changes. Instants are fixed (no real clock).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dayMask, firstSlotFrom, instantOf, nextSlot, type Calendar } from '../../src/calendar.ts';
import { loadConfig } from '../../src/config.ts';
import { NO_CHOICES, nextDue, parseCalendarForm } from '../../src/subscribers/calendars.ts';

const at = (iso: string): number => Date.parse(iso);
const next = (cal: Partial<Calendar> & { timezone: string }, after: string): string => {
  const t = nextSlot({ cadence: 'daily', days: 0, minute: 7 * 60, ...cal }, at(after));
  return t === null ? 'none' : new Date(t).toISOString();
};

describe('next delivery slot', () => {
  it('daily at 07:00 follows Paris across the spring and autumn changes', () => {
    assert.equal(next({ timezone: 'Europe/Paris' }, '2026-03-28T06:00:00Z'), '2026-03-29T05:00:00.000Z');
    assert.equal(next({ timezone: 'Europe/Paris' }, '2026-03-28T05:59:00Z'), '2026-03-28T06:00:00.000Z');
    assert.equal(next({ timezone: 'Europe/Paris' }, '2026-10-24T05:00:00Z'), '2026-10-25T06:00:00.000Z');
  });

  it('a time the clocks skip is moved on by the gap; a time that happens twice is its first occurrence', () => {
    assert.equal(
      next({ timezone: 'Europe/Paris', minute: 2 * 60 + 30 }, '2026-03-28T12:00:00Z'),
      '2026-03-29T01:30:00.000Z',
      '02:30 does not exist: 03:30 CEST',
    );
    assert.equal(
      next({ timezone: 'Europe/Paris', minute: 2 * 60 + 30 }, '2026-10-24T12:00:00Z'),
      '2026-10-25T00:30:00.000Z',
      '02:30 CEST, not 02:30 CET',
    );
    assert.equal(
      next({ timezone: 'America/New_York', minute: 2 * 60 + 15 }, '2026-03-07T12:00:00Z'),
      '2026-03-08T07:15:00.000Z',
      '02:15 does not exist: 03:15 EDT',
    );
  });

  it('UTC−12 and UTC+14: the local date, not the UTC one, decides the day', () => {
    assert.equal(next({ timezone: 'Etc/GMT+12' }, '2026-06-10T12:00:00Z'), '2026-06-10T19:00:00.000Z');
    assert.equal(
      next({ timezone: 'Pacific/Kiritimati' }, '2026-06-10T12:00:00Z'),
      '2026-06-10T17:00:00.000Z',
      '07:00 on the 11th in Kiritimati',
    );
    // Monday 07:00 in Kiritimati is Sunday 17:00 UTC; in UTC−12 it is Monday 19:00 UTC.
    const monday = dayMask(['monday']);
    assert.equal(
      next({ timezone: 'Pacific/Kiritimati', cadence: 'weekly', days: monday }, '2026-06-07T00:00:00Z'),
      '2026-06-07T17:00:00.000Z',
    );
    assert.equal(
      next({ timezone: 'Etc/GMT+12', cadence: 'weekly', days: monday }, '2026-06-07T00:00:00Z'),
      '2026-06-08T19:00:00.000Z',
    );
  });

  it('half-hour offsets: Kolkata all year, Adelaide with its own DST', () => {
    assert.equal(next({ timezone: 'Asia/Kolkata' }, '2026-01-15T00:00:00Z'), '2026-01-15T01:30:00.000Z');
    assert.equal(
      next({ timezone: 'Australia/Adelaide' }, '2026-06-15T00:00:00Z'),
      '2026-06-15T21:30:00.000Z',
      'winter: UTC+9:30',
    );
    assert.equal(
      next({ timezone: 'Australia/Adelaide' }, '2026-01-15T00:00:00Z'),
      '2026-01-15T20:30:00.000Z',
      'summer: UTC+10:30',
    );
    // Adelaide moves forward on Sunday 2026-10-04 at 02:00.
    assert.equal(next({ timezone: 'Australia/Adelaide' }, '2026-10-03T00:00:00Z'), '2026-10-03T20:30:00.000Z');
    assert.equal(next({ timezone: 'Australia/Adelaide' }, '2026-10-02T22:00:00Z'), '2026-10-03T20:30:00.000Z');
    assert.equal(next({ timezone: 'Australia/Adelaide' }, '2026-10-02T21:00:00Z'), '2026-10-02T21:30:00.000Z');
  });

  it('weekdays skip the weekend; chosen days and weekly keep to their days', () => {
    // Friday 2026-06-12 after 07:00 UTC: next is Monday.
    assert.equal(next({ timezone: 'UTC', cadence: 'weekdays' }, '2026-06-12T08:00:00Z'), '2026-06-15T07:00:00.000Z');
    const tueThu = dayMask(['tuesday', 'thursday']);
    assert.equal(
      next({ timezone: 'UTC', cadence: 'days', days: tueThu }, '2026-06-12T08:00:00Z'),
      '2026-06-16T07:00:00.000Z',
    );
    assert.equal(
      next({ timezone: 'UTC', cadence: 'days', days: tueThu }, '2026-06-16T07:00:00Z'),
      '2026-06-18T07:00:00.000Z',
    );
    assert.equal(
      next({ timezone: 'UTC', cadence: 'weekly', days: dayMask(['friday']) }, '2026-06-12T07:00:00Z'),
      '2026-06-19T07:00:00.000Z',
    );
    assert.equal(next({ timezone: 'UTC', cadence: 'days', days: 0 }, '2026-06-12T07:00:00Z'), 'none');
  });

  it("a pause ends at the first slot on its date in the reader's zone", () => {
    const cal: Calendar = { cadence: 'daily', days: 0, minute: 0, timezone: 'Asia/Kolkata' };
    assert.equal(
      new Date(firstSlotFrom(cal, '2026-07-01')!).toISOString(),
      '2026-06-30T18:30:00.000Z',
      'midnight itself is a slot',
    );
    assert.equal(new Date(instantOf(2026, 7, 1, 0, 'Pacific/Kiritimati')).toISOString(), '2026-06-30T10:00:00.000Z');
  });
});

describe("the reader's choices and the config's defaults", () => {
  const none = NO_CHOICES;
  const config = (over: Record<string, unknown> = {}) => ({
    ...loadConfig({ env: {}, cwd: '/nonexistent-dir-for-defaults' }),
    mode: 'paced' as const,
    ...over,
  });

  it("the default is the story's own schedule; readers.* gives new readers a calendar", () => {
    const c = config();
    assert.equal(nextDue(none, c, new Date('2026-06-10T12:00:00Z')), null);
    const daily = config({ readers: { ...c.readers, cadence: 'daily', time: '06:45', timezone: 'Asia/Kolkata' } });
    assert.equal(nextDue(none, daily, new Date('2026-06-10T12:00:00Z')), '2026-06-11T01:15:00.000Z');
    // A pause beats the calendar until its date.
    assert.equal(
      nextDue(
        { ...none, pausedUntil: '2026-06-20', pausedUntilAt: '2026-06-19T18:30:00.000Z' },
        daily,
        new Date('2026-06-10T12:00:00Z'),
      ),
      '2026-06-20T01:15:00.000Z',
    );
  });

  it('the form refuses what it cannot use, one message each', () => {
    const c = config();
    const bad = parseCalendarForm(
      { cadence: 'hourly', time: '25:00', timezone: 'Mars/Olympus', days: ['funday'] },
      none,
      c,
    );
    assert.deepEqual(bad, {
      ok: false,
      errors: [
        'Choose how often you would like installments.',
        'Choose days of the week from the list.',
        'Give the time of day as hours and minutes, such as 07:30.',
        'Choose your time zone from the list.',
      ],
    });
    assert.deepEqual(parseCalendarForm({ cadence: 'days', time: '07:00', timezone: 'UTC' }, none, c), {
      ok: false,
      errors: ['Choose at least one day of the week.'],
    });
    const ok = parseCalendarForm(
      { cadence: 'weekly', weekday: 'friday', time: '21:30', timezone: 'Australia/Adelaide' },
      none,
      c,
    );
    assert.deepEqual(ok, {
      ok: true,
      choices: {
        ...none,
        cadence: 'weekly',
        days: dayMask(['friday']),
        sendMinute: 21 * 60 + 30,
        timezone: 'Australia/Adelaide',
      },
    });
  });
});
