// The send rate limit on a fake clock: at most `limit` messages start in any window, in
// the order they asked, and none waits longer than it must.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateGate, type GateClock } from '../../src/deliver/rate-gate.ts';

/** Virtual time: a sleep moves the clock on at once, so a test reads when each message would start. */
function fakeClock(): GateClock & { t: number } {
  const clock = {
    t: 0,
    now: () => clock.t,
    sleep: (ms: number) => {
      clock.t += ms;
      return Promise.resolve();
    },
  };
  return clock;
}

async function startTimes(gate: RateGate, clock: { t: number }, count: number): Promise<number[]> {
  const times: number[] = [];
  await Promise.all(Array.from({ length: count }, () => gate.pass().then(() => times.push(clock.t))));
  return times;
}

describe('RateGate', () => {
  it('lets `limit` start at once, then one window later the next `limit`', async () => {
    const clock = fakeClock();
    const times = await startTimes(new RateGate(3, 1000, clock), clock, 7);
    assert.deepEqual(times, [0, 0, 0, 1000, 1000, 1000, 2000]);
  });

  it('keeps a fractional limit on the safe side', async () => {
    let clock = fakeClock();
    assert.deepEqual(await startTimes(new RateGate(0.5, 1000, clock), clock, 3), [0, 2000, 4000]);
    clock = fakeClock();
    assert.deepEqual(await startTimes(new RateGate(2.5, 1000, clock), clock, 5), [0, 0, 1000, 1000, 2000]);
  });

  it('counts a sliding window, not calendar seconds', async () => {
    const clock = fakeClock();
    const gate = new RateGate(2, 1000, clock);
    await gate.pass();
    clock.t = 500;
    await gate.pass();
    clock.t = 600;
    await gate.pass();
    assert.equal(clock.t, 1000, 'the third waits until the first is a window old');
    await gate.pass();
    assert.equal(clock.t, 1500);
    clock.t = 5000;
    await gate.pass();
    assert.equal(clock.t, 5000, 'after a quiet spell nothing waits');
  });

  it('never lets more than `limit` start in any window, whatever the arrivals', async () => {
    const clock = fakeClock();
    const gate = new RateGate(5, 60_000, clock);
    const times: number[] = [];
    let seed = 7;
    for (let i = 0; i < 200; i++) {
      seed = (seed * 48271) % 2147483647;
      clock.t += seed % 20_000;
      await gate.pass();
      times.push(clock.t);
    }
    for (let i = 0; i + 5 < times.length; i++) {
      assert.ok(times[i + 5]! - times[i]! >= 60_000, `messages ${i} and ${i + 5} started within one window`);
    }
  });

  it('waits again when a timer fires early by the clock', async () => {
    const clock = fakeClock();
    const early = { now: () => clock.t, sleep: (ms: number) => clock.sleep(Math.max(1, ms - 5)) };
    const gate = new RateGate(1, 1000, early);
    const times = await startTimes(gate, clock, 3);
    assert.deepEqual(times, [0, 1000, 2000]);
  });

  it('goes on after a wait that failed', async () => {
    const clock = fakeClock();
    let fail = true;
    const flaky = {
      now: () => clock.t,
      sleep: (ms: number) => (fail ? ((fail = false), Promise.reject(new Error('aborted'))) : clock.sleep(ms)),
    };
    const gate = new RateGate(1, 1000, flaky);
    await gate.pass();
    await assert.rejects(gate.pass(), /aborted/);
    await gate.pass();
    assert.equal(clock.t, 1000);
  });

  it('lets messages through in the order they asked', async () => {
    const clock = fakeClock();
    const gate = new RateGate(1, 10, clock);
    const order: number[] = [];
    await Promise.all([1, 2, 3, 4].map((n) => gate.pass().then(() => order.push(n))));
    assert.deepEqual(order, [1, 2, 3, 4]);
  });
});
