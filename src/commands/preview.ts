// `feuilleton preview`: the installment email exactly as the renderer prepares it, filled
// for a demo subscriber, written to files the author can open (and optionally screenshot).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { App } from '../app.ts';
import { UserError } from '../errors.ts';
import { linksFor } from '../links.ts';
import { launchChromium } from '../render/chromium.ts';
import { emailRendererFor } from '../render/email.ts';
import { upcomingRuns } from '../runtime.ts';

const DEMO_SUBSCRIBER = { id: 0, feedToken: 'preview' };

const VIEWPORTS = [
  { name: 'desktop', width: 600 },
  { name: 'mobile', width: 375 },
] as const;

async function screenshots(html: string, base: string): Promise<string[]> {
  const browser = await launchChromium();
  try {
    const files: string[] = [];
    for (const { name, width } of VIEWPORTS) {
      const page = await browser.newPage({ viewport: { width, height: 800 } });
      await page.setContent(html);
      const file = `${base}-${name}.png`;
      await page.screenshot({ path: file, fullPage: true });
      files.push(file);
    }
    return files;
  } finally {
    await browser.close();
  }
}

/** Default: the first unpublished installment, else the last one. */
export async function preview(
  app: App,
  number: number | undefined,
  opts: { png: boolean; outDir?: string },
): Promise<string[]> {
  const all = app.store.installments.all();
  const inst =
    number === undefined ? (all.find((i) => !i.publishedAt) ?? all.at(-1)) : all.find((i) => i.number === number);
  if (!inst) {
    const wanted = number === undefined ? 'there is no installment to preview' : `installment ${number} does not exist`;
    throw new UserError(`${wanted}; the story has ${all.length} installments (see \`feuilleton installments\`)`);
  }
  const links = linksFor(app);
  const renderer = emailRendererFor(app, links);
  // The date the email will carry when the schedule sends it: the first unpublished
  // installment goes at the coming run and names the one after; each later one goes a run
  // further on. No schedule, no date, as at send time.
  const hasNext = inst.number < (all.at(-1)?.number ?? 0);
  const runsAhead = Math.max(0, inst.number - (all.find((i) => !i.publishedAt)?.number ?? inst.number));
  const nextDate = hasNext ? (upcomingRuns(app.config, runsAhead + 2)[runsAhead + 1]?.toISOString() ?? null) : null;
  const prepared = await renderer.installment(inst, { nextDate });
  const { email } = prepared.fillFor(DEMO_SUBSCRIBER);

  const dir = opts.outDir ?? path.join(app.config.paths.data, 'preview');
  await mkdir(dir, { recursive: true });
  const base = path.join(dir, `installment-${inst.number}`);
  await writeFile(`${base}.html`, email.html);
  await writeFile(`${base}.txt`, `Subject: ${email.subject}\n\n${email.text}`);
  const files = [`${base}.html`, `${base}.txt`];
  return opts.png ? [...files, ...(await screenshots(email.html, base))] : files;
}
