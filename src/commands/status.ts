import type { App } from '../app.ts';
import { nextScheduledRun } from '../runtime.ts';
import { check, type CheckResult } from './check.ts';

/** The check without what only `check` itself prints (the DNS record). */
const goingLive = ({ production, productionReason, errors, warnings }: CheckResult) => ({
  production,
  productionReason,
  errors,
  warnings,
});

/** Active readers by where they are in the story, with the paused and those on their own calendar. */
function readerProgress(app: App, total: number, now: Date) {
  const p = app.store.subscribers.progress(now.toISOString());
  const reading = p.byPosition.filter((r) => r.position < total);
  return {
    /**
     * Readers by the last installment they were sent (0: none yet). Broadcast readers are
     * counted at 0: the shared calendar keeps no place.
     */
    atInstallment: reading.map((r) => ({ installment: r.position, readers: r.readers })),
    finished: p.byPosition.filter((r) => r.position >= total && total > 0).reduce((n, r) => n + r.readers, 0),
    paused: p.paused,
    ownCalendar: p.ownCalendar,
  };
}

export function statusData(app: App, now = new Date()) {
  const { store, config } = app;
  const installments = store.installments.count();
  const lastRun = store.runs.latest();
  const unfinished = store.runs.unfinished();
  const holder = store.runs.lockHolder();
  const deliveries = store.deliveries.countByStatus();
  const complete = installments.total > 0 && installments.published === installments.total && !unfinished;
  return {
    story: { title: app.info.title, author: app.info.author ?? null, file: app.story.file, mode: config.mode },
    installments: { ...installments, complete },
    subscribers: store.subscribers.countByStatus(),
    readers: readerProgress(app, installments.total, now),
    deliveries,
    /** Confirmation, welcome and "The End" emails. */
    notices: store.notices.countByStatus(),
    /** Bounce and complaint reports from the relay. */
    feedback: store.feedback.countByType(),
    lastRun: lastRun ?? null,
    runInProgress: holder && !holder.dead ? { pid: holder.pid, host: holder.host, since: holder.since } : null,
    needsResume:
      unfinished && (!holder || holder.dead)
        ? {
            runId: unfinished.id,
            status: unfinished.status,
            reason: unfinished.reason,
            needsOperator: unfinished.needsOperator,
          }
        : null,
    nextScheduledRun:
      config.schedule.enabled && !(complete && config.mode === 'broadcast')
        ? (nextScheduledRun(config)()?.toISOString() ?? null)
        : null,
    schedule: { enabled: config.schedule.enabled, cron: config.schedule.cron, timezone: config.schedule.timezone },
    mail: config.mail.smtpUrl ? 'smtp' : `outbox (${config.paths.outbox})`,
    goingLive: goingLive(check(config)),
  };
}

function readersLine(r: ReturnType<typeof readerProgress>, mode: string): string {
  const at = r.atInstallment.map((a) =>
    a.installment === 0 ? `${a.readers} not started` : `${a.readers} at installment ${a.installment}`,
  );
  const active = r.finished + r.atInstallment.reduce((n, a) => n + a.readers, 0);
  const where =
    mode === 'paced' ? [...at, `${r.finished} finished`] : [`${active - r.ownCalendar} on the shared calendar`];
  return `${where.join(', ')}; ${r.paused} paused; ${r.ownCalendar} on a calendar of their own`;
}

export function statusReport(app: App, now = new Date()): string {
  const s = statusData(app, now);
  const { deliveries: d, notices: n, feedback: f, lastRun: run, runInProgress: running } = s;
  const c = run?.counts;
  const counts = c ? `: sent ${c.sent}, failed ${c.failed}, retried ${c.retried}, skipped ${c.skipped}` : '';
  const lines = [
    `Story:         ${s.story.title}${s.story.author ? ` by ${s.story.author}` : ''} (${s.story.mode} mode)`,
    `Installments:  ${s.installments.published} of ${s.installments.total} published` +
      (s.installments.complete ? ' — the story is complete' : ''),
    `Subscribers:   ${Object.entries(s.subscribers)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ')}`,
    `Readers:       ${readersLine(s.readers, s.story.mode)}`,
    `Deliveries:    ${d.sent} sent, ${d.failed} failed, ${d.queued} waiting to be resumed, ` +
      `${d.possibleDuplicates} possible duplicate(s)`,
    `Other emails:  ${n.sent} sent, ${n.queued + n.sending} waiting, ${n.failed} failed ` +
      '(confirmation, welcome, The End)',
    `Relay reports: ${f.bounce} bounce(s), ${f['soft-bounce']} soft bounce(s), ${f.complaint} complaint(s)`,
    `Last run:      ${run ? `#${run.id} ${run.kind}, ${run.status}, started ${run.startedAt}${counts}` : 'none yet'}`,
    `In progress:   ${running ? `yes (process ${running.pid} on ${running.host}, since ${running.since})` : 'no'}`,
  ];
  if (s.needsResume?.needsOperator)
    lines.push(`Needs you:     run #${s.needsResume.runId} is paused: ${s.needsResume.reason ?? ''}`);
  else if (s.needsResume)
    lines.push(
      `Needs resume:  run #${s.needsResume.runId} is ${s.needsResume.status}; ` +
        'continue it with: feuilleton send --resume',
    );
  const { enabled, cron, timezone } = s.schedule;
  const nextRun = s.nextScheduledRun ?? 'none: the story is complete';
  lines.push(
    `Schedule:      ${enabled ? `"${cron}" (${timezone}); next run ${nextRun}` : 'disabled'}`,
    `Mail:          ${s.mail}`,
  );
  const { production, errors, warnings } = s.goingLive;
  if (production) {
    lines.push(
      `Going live:    production; ${errors.length} error(s), ${warnings.length} warning(s)` +
        (errors.length + warnings.length ? ':' : ''),
    );
    lines.push(...errors.map((e) => `  error: ${e}`), ...warnings.map((w) => `  warning: ${w}`));
  } else {
    // The local tour would otherwise open with a page of advice it does not need yet.
    lines.push(
      `Going live:    not in production; ${errors.length} error(s), ${warnings.length} warning(s) ` +
        'to fix first (feuilleton check)',
    );
  }
  return lines.join('\n');
}
