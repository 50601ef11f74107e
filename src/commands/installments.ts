import type { App } from '../app.ts';
import { installmentEmailSizes, sizeWarnings } from '../render/size.ts';
import type { StoredInstallment } from '../store/installments.ts';
import { formatTable } from './table.ts';

const FIRST_WORDS = 8;

function firstWords(inst: StoredInstallment): string {
  const para = inst.blocks.find((b) => b.kind === 'paragraph');
  if (!para) return '';
  const words = para.text.split(/\s+/).filter(Boolean);
  return words.slice(0, FIRST_WORDS).join(' ') + (words.length > FIRST_WORDS ? ' …' : '');
}

export async function installmentsReport(app: App, json: boolean): Promise<string> {
  const list = app.store.installments.all();
  const sizes = await installmentEmailSizes(app);
  const emailKB = new Map(sizes.map((s) => [s.number, s.kb]));
  if (json) {
    return JSON.stringify(
      {
        story: {
          title: app.info.title,
          titleSource: app.info.titleSource,
          author: app.info.author ?? null,
          file: app.story.file,
          // The header as readers see it: the author's keys, rating and warnings first.
          details: app.info.details,
          notes: app.info.notes,
        },
        installments: list.map((i) => ({
          number: i.number,
          title: i.title,
          words: i.wordCount,
          minutes: i.minutes,
          firstWords: firstWords(i),
          emailKB: emailKB.get(i.number),
          published: i.publishedAt !== null,
          publishedAt: i.publishedAt,
          hash: i.hash,
        })),
        warnings: [...app.warnings, ...sizeWarnings(sizes)],
      },
      null,
      2,
    );
  }
  const byline = app.info.author ? ` by ${app.info.author}` : '';
  const head =
    `${app.info.title}${byline} (title from ${app.info.titleSource}); ` +
    `${list.length} installments, target ${app.config.split.targetWords} words`;
  const table = formatTable(
    ['#', 'Title', 'Words', 'Min', 'First words', 'Published'],
    list.map((i) => [i.number, i.title, i.wordCount, i.minutes, firstWords(i), i.publishedAt ? 'yes' : 'no']),
  );
  return [`${head}\n\n${table}`, ...sizeWarnings(sizes).map((w) => `warning: ${w}`)].join('\n');
}
