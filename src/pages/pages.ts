// Server-rendered pages from templates/pages/*.eta. Eta escapes every `<%= %>` value, so
// story text, addresses and titles are inert wherever they appear.
import path from 'node:path';
import { Eta } from 'eta';
import type { Links } from '../links.ts';
import type { StoryInfo } from '../story/info.ts';

export interface PageCommon {
  info: StoryInfo;
  links: Links;
  outboxEnabled: boolean;
}

export interface MessagePage {
  pageTitle: string;
  heading: string;
  paragraphs: string[];
  action?: { url: string; label: string; fields: Record<string, string> };
  /** Where to go from here, shown under the text. */
  nextSteps?: Array<{ url: string; label: string }>;
}

export class Pages {
  private readonly eta: Eta;
  /** One formatter for every page: building one per date (toLocaleDateString) was most of a page's cost. */
  private readonly dateFormat: Intl.DateTimeFormat;

  constructor(
    templatesDir: string,
    /** What every page shows (story, links): also what routes build their own URLs from. */
    readonly common: PageCommon,
  ) {
    this.eta = new Eta({ views: path.join(templatesDir, 'pages'), cache: true, autoEscape: true });
    this.dateFormat = new Intl.DateTimeFormat(common.info.language, {
      year: 'numeric',
      month: 'long',
      day: 'numeric',
      timeZone: 'UTC',
    });
  }

  render(name: string, data: object): string {
    return this.eta.render(`./${name}`, { ...this.common, formatDate: this.formatDate, ...data });
  }

  private readonly formatDate = (iso: string | null): string => (iso ? this.dateFormat.format(new Date(iso)) : '');

  message(page: MessagePage): string {
    return this.render('message', page);
  }
}
