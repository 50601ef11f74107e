// A run's summary in words, as the CLI prints it and the scheduler logs it.
import type { SendSummary } from './send.ts';

export function summaryLines(s: SendSummary): string[] {
  if (s.status === 'nothing-to-send') return [`Nothing to send: ${s.reason}.`];
  const what = s.due
    ? "readers' own calendars"
    : s.mode === 'broadcast'
      ? `installment ${s.installment}`
      : 'paced installments';
  const lines = [
    `Run ${s.runId} (${what}): ${s.status}.`,
    `  sent ${s.sent}, failed ${s.failed}, retried ${s.retried}, ` +
      `skipped ${s.skipped} (already sent or in progress), possible duplicates ${s.possibleDuplicates}`,
  ];
  if (s.recovered)
    lines.push(
      `  ${s.recovered} message(s) had been interrupted mid-send by a crash ` +
        'and were handled per delivery.inFlightPolicy',
    );
  if (s.finishedReaders) lines.push(`  ${s.finishedReaders} reader(s) finished the story and got "The End"`);
  if (s.reason) lines.push(`  ${s.needsOperator ? 'needs you: ' : ''}${s.reason}`);
  return lines;
}
