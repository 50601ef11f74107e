// Public pages rendered once per published state, not once per request. A page that
// carries the subscribe form is rendered with a stand-in for the visitor's CSRF token, cut
// there once, and joined with each visitor's own token as it is served.
import { randomBytes } from 'node:crypto';

/** Letters and digits: passes the templates' escaping unchanged, and no story text holds it. */
export const CSRF_SLOT = `csrfslot${randomBytes(12).toString('hex')}`;

/** A rendered page, or null for one that does not exist (a 404, cached too). */
type Entry = string[] | null;

export class PageCache {
  private key: string | undefined;
  private readonly pages = new Map<string, Entry>();

  /** `state` names what the pages depend on: when it changes, every page is rendered again. */
  constructor(private readonly state: () => string) {}

  /** The page at `path` for a visitor with this CSRF token (made by `render` with CSRF_SLOT), or null. */
  get(path: string, csrf: () => string, render: (csrfSlot: string) => string | null): string | null {
    const key = this.state();
    if (key !== this.key) {
      this.key = key;
      this.pages.clear();
    }
    let entry = this.pages.get(path);
    if (entry === undefined) {
      const page = render(CSRF_SLOT);
      entry = page === null ? null : page.split(CSRF_SLOT);
      this.pages.set(path, entry);
    }
    if (entry === null) return null;
    return entry.length === 1 ? entry[0]! : entry.join(csrf());
  }
}
