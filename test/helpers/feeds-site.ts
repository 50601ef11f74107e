// The real server for a throwaway project, on 127.0.0.1 and a free port, plus the few
// ways the feed tests read what it serves.
import type { App } from '../../src/app.ts';
import { startServing, type Serving } from '../../src/commands/serve.ts';
import { createLogger } from '../../src/log.ts';
import { normalizeForCompare } from './story-text.ts';
import type { Project } from './project.ts';

export interface Site {
  app: App;
  serving: Serving;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  stop(): Promise<void>;
}

export async function startSite(project: Project): Promise<Site> {
  const app = project.open();
  const serving = await startServing(app, createLogger({ level: 'silent', pretty: false }), {
    host: '127.0.0.1',
    port: 0,
  });
  return {
    app,
    serving,
    get: (path, headers = {}) => fetch(new URL(path, serving.url), { headers }),
    stop: () => serving.stop(),
  };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
const BLOCK_TAG = /<\/?(?:p|h[1-6]|div|br|li|blockquote)\b[^>]*>/gi;

function decodeEntity(entity: string, name: string): string {
  if (/^#x/i.test(name)) return String.fromCodePoint(parseInt(name.slice(2), 16));
  if (name.startsWith('#')) return String.fromCodePoint(parseInt(name.slice(1), 10));
  return ENTITIES[name] ?? entity;
}

/** Markup removed, entities decoded, whitespace runs collapsed: how a reader sees the text. */
export function plainText(html: string): string {
  return normalizeForCompare(
    html
      .replace(BLOCK_TAG, ' ')
      .replace(/<[^>]*>/g, '')
      .replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, decodeEntity),
  );
}

/** The inner HTML of the email's story cell (`<mj-text css-class="story">` in installment.mjml). */
export function emailStoryHtml(email: string): string {
  const m = /<td[^>]*\bclass="story"[^>]*>([\s\S]*?)<\/td>/.exec(email);
  if (!m) throw new Error('no story cell in the email HTML');
  return m[1]!;
}

/** The story in an email's text part: the lines between the installment title and "Read online". */
export function emailStoryText(text: string, title: string): string {
  const start = text.indexOf(`\n${title}\n`);
  // The last installment's story ends at its "The End" (a heading of its own, after the story).
  const endMark = text.indexOf('\n\nThe End\n\n', start);
  const end = endMark >= 0 ? endMark : text.indexOf('\nRead online\n', start);
  if (start < 0 || end < 0) throw new Error(`no story between "${title}" and "Read online" in the text part`);
  return normalizeForCompare(text.slice(start + title.length + 2, end));
}

/** The inner HTML of an installment page's `<div class="story">`. */
export function storyHtml(page: string): string {
  const m = /<div class="story">([\s\S]*?)<\/div>/.exec(page);
  if (!m) throw new Error('no <div class="story"> in the page');
  return m[1]!;
}
