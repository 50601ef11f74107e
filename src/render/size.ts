// How big each installment's email is. Gmail shows the first 102 KB of an email's HTML and
// hides the rest behind "View entire message": the end of the installment, the unsubscribe
// link and the postal address with it. `installments` and `check` warn well before that.
import type { App } from '../app.ts';
import { linksFor } from '../links.ts';
import type { StoredInstallment } from '../store/installments.ts';
import { emailRendererFor } from './email.ts';
import { installmentHtml } from './fragment.ts';

export const GMAIL_CLIP_KB = 102;
export const WARN_KB = 90;
/** Emails estimated within this much of the warning are rendered to be sure. */
const MARGIN_KB = 16;

const SAMPLE_READER = { id: 0, feedToken: 'size-check' };

export interface EmailSize {
  number: number;
  kb: number;
}

const kb = (html: string): number => Math.ceil(Buffer.byteLength(html) / 1024);

/**
 * The HTML size of every installment's email, filled for a sample reader. MJML runs for the
 * first and for those that come near the limit; the rest are the first's frame plus their own
 * story HTML, as MJML takes a second or more per hundred installments.
 */
export async function installmentEmailSizes(app: App): Promise<EmailSize[]> {
  const list = app.store.installments.all();
  if (!list.length) return [];
  const links = linksFor(app);
  const renderer = emailRendererFor(app, links);
  const link = links.unsubscribe(SAMPLE_READER);
  const render = async (inst: StoredInstallment): Promise<string> => {
    const email = await renderer.installment(inst, { nextDate: null });
    return email.fill(Object.fromEntries(email.placeholders.map((name) => [name, link]))).html;
  };
  const storyBytes = (inst: StoredInstallment): number => Buffer.byteLength(installmentHtml(inst.blocks));
  const first = await render(list[0]!);
  const frame = Buffer.byteLength(first) - storyBytes(list[0]!);
  const sizes: EmailSize[] = [{ number: list[0]!.number, kb: kb(first) }];
  for (const inst of list.slice(1)) {
    const estimate = Math.ceil((frame + storyBytes(inst)) / 1024);
    sizes.push({ number: inst.number, kb: estimate < WARN_KB - MARGIN_KB ? estimate : kb(await render(inst)) });
  }
  return sizes;
}

/** One line per installment whose email passes the warning size. */
export const sizeWarnings = (sizes: EmailSize[]): string[] =>
  sizes
    .filter((s) => s.kb > WARN_KB)
    .map(
      (s) =>
        `installment ${s.number}'s email is ${s.kb} KB of HTML: Gmail clips emails over ${GMAIL_CLIP_KB} KB, ` +
        'hiding the end of the installment, the unsubscribe link and your postal address ' +
        'behind "View entire message"; ' +
        'make it shorter (lower split.targetMinutes or split.targetWords, or break up its longest paragraphs)',
    );
