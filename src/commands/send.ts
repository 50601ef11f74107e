// `feuilleton send`: a progress bar with rate and ETA on a terminal, plain lines otherwise,
// then a summary. Exit code: 0 all sent, 1 something failed, 2 the run paused (resume it).
import cliProgress from 'cli-progress';
import { planRun, sendRun, sendTest, type SendContext, type SendSummary } from '../deliver/send.ts';
import { summaryLines } from '../deliver/summary.ts';
import { normalizeEmail } from '../subscribers/address.ts';
import type { RunCounts } from '../store/runs.ts';

export interface SendCliOptions {
  dryRun?: boolean;
  to?: string;
  installment?: number;
  resume?: boolean;
  retryFailed?: number | true;
  limit?: number;
  force?: boolean;
}

type Out = (line: string) => void;

export const exitCodeFor = (s: SendSummary): number => (s.failed > 0 ? 1 : s.status === 'paused' ? 2 : 0);

function progressReporter(
  out: Out,
  tty: boolean,
  signal?: AbortSignal,
): { onProgress: (c: RunCounts) => void; stop: () => void } {
  if (tty) {
    const bar = new cliProgress.SingleBar(
      {
        format: 'Sending [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted} | failed {failed}',
        hideCursor: true,
        etaBuffer: 200,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    const t0 = Date.now();
    return {
      onProgress: (c) => {
        if (signal?.aborted) return;
        const done = c.sent + c.failed;
        const rate = (done / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(0);
        if (!started) {
          bar.start(Math.max(c.planned, done), done, { rate, failed: c.failed });
          started = true;
        }
        bar.setTotal(Math.max(c.planned, done));
        bar.update(done, { rate, failed: c.failed });
      },
      stop: () => started && bar.stop(),
    };
  }
  let last = 0;
  return {
    onProgress: (c) => {
      const done = c.sent + c.failed;
      // One line per ~2 s keeps logs readable at thousands of messages per second.
      if (Date.now() - last < 2000 && done !== c.planned) return;
      last = Date.now();
      out(`progress: ${done}/${c.planned} (sent ${c.sent}, failed ${c.failed}, retried ${c.retried})`);
    },
    stop: () => undefined,
  };
}

export async function sendCommand(
  ctx: SendContext,
  opts: SendCliOptions,
  out: Out,
  signal?: AbortSignal,
): Promise<number> {
  if (opts.to !== undefined) {
    const to = normalizeEmail(opts.to);
    const r = await sendTest(ctx, to, opts.installment);
    out(`Test send of installment ${r.installment} to ${to}: ${r.messageId} (not recorded as a delivery)`);
    return 0;
  }
  if (opts.dryRun) {
    const plan = planRun(ctx, { installment: opts.installment });
    if (plan.note) out(`Dry run: ${plan.note}.`);
    for (const l of plan.lines) out(`would send installment ${l.installment} to ${l.email}`);
    out(`Dry run (${plan.mode}): ${plan.lines.length} message(s) would be sent; nothing was sent or recorded.`);
    return 0;
  }
  const progress = progressReporter(out, process.stderr.isTTY === true, signal);
  let summary: SendSummary;
  try {
    summary = await sendRun(ctx, {
      installment: opts.installment,
      resume: opts.resume,
      retryFailed: opts.retryFailed,
      limit: opts.limit,
      force: opts.force,
      onProgress: progress.onProgress,
      signal,
      kind: 'manual',
    });
  } finally {
    progress.stop();
  }
  for (const line of summaryLines(summary)) out(line);
  return exitCodeFor(summary);
}
