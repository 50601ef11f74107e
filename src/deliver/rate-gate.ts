// mail.ratePerSecond / ratePerMinute: no more than `limit` messages are handed to the SMTP
// pool in any window of `windowMs`. nodemailer's pool has a limiter of its own, but it counts a
// message only when a connection comes free, so each new connection's first message goes
// past it: a fresh pool of 5 at "2 a second" sent 3 in a tenth of a second, and a relay
// that enforces its limit answers such bursts with 454 throttling.

export interface GateClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export class RateGate {
  /** When each of the last `limit` messages started, oldest at `next`. */
  private readonly starts: number[];
  private next = 0;
  /** Messages pass in the order they asked. */
  private queue: Promise<void> = Promise.resolve();

  private readonly windowMs: number;

  /**
   * A fractional limit is kept on the safe side: 2.5 a second lets 2 start per second, 0.5
   * a second 1 per two seconds (no window then ever holds more than the limit allows).
   */
  constructor(
    limit: number,
    windowMs: number,
    private readonly clock: GateClock,
  ) {
    this.starts = new Array<number>(Math.max(1, Math.floor(limit))).fill(-Infinity);
    this.windowMs = limit < 1 ? windowMs / limit : windowMs;
  }

  /** Resolves when one more message may start. */
  pass(): Promise<void> {
    const turn = this.queue.then(() => this.take());
    // A turn that failed must not fail every one after it.
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async take(): Promise<void> {
    const free = this.starts[this.next]! + this.windowMs;
    let now: number;
    // Timers can fire a little early by the clock (libuv schedules from the loop's cached time).
    while ((now = this.clock.now()) < free) await this.clock.sleep(free - now);
    this.starts[this.next] = now;
    this.next = (this.next + 1) % this.starts.length;
  }
}
