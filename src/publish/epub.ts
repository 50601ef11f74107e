// The whole story as an EPUB 3 file: a title page with the author's header fields, one
// XHTML document per installment (the same rendering as email, feed and page), a
// navigation document and the package document, zipped as the OCF container requires:
// `mimetype` first and stored uncompressed. Built from installments, never from the story
// file, so the book holds exactly the frozen text readers were sent.
import { createHash } from 'node:crypto';
import { strToU8, zipSync, type Zippable } from 'fflate';
import { escapeHtml, installmentHtml, ratingNotice, readingBlocks } from '../render/fragment.ts';
import type { StoredInstallment } from '../store/installments.ts';
import type { StoryInfo } from '../story/info.ts';

export const EPUB_CONTENT_TYPE = 'application/epub+zip';

// XML 1.0 cannot carry these at all (see feeds.ts).
// eslint-disable-next-line no-control-regex -- matching those control characters is the point
const XML_ILLEGAL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;
const x = (s: string): string => escapeHtml(s.replace(XML_ILLEGAL, ''));

/** HTML void elements as XHTML needs them; story text is escaped, so every `<` here is our markup. */
const xhtmlFragment = (html: string): string =>
  html.replace(XML_ILLEGAL, '').replace(/<(br|hr|img)\b([^>]*?)\s*\/?>/g, '<$1$2 />');

const CSS = `body { font-family: Georgia, serif; line-height: 1.6; }
h1 { font-size: 1.6em; margin: 2em 0 1em; text-align: center; }
p { margin: 0 0 0.8em; }
.scene-break { text-align: center; letter-spacing: 0.5em; margin: 1.5em 0; }
.title-page { text-align: center; }
dl.details dt { font-weight: bold; }
`;

const NAMESPACES = 'xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"';
const STYLESHEET = '<link rel="stylesheet" type="text/css" href="style.css" />';

function page(lang: string, title: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html ${NAMESPACES} xml:lang="${x(lang)}" lang="${x(lang)}">
<head><meta charset="UTF-8" /><title>${x(title)}</title>${STYLESHEET}</head>
<body>
${body}
</body>
</html>
`;
}

function titlePage(info: StoryInfo): string {
  const notice = ratingNotice(info);
  const details = info.details.map((d) => `<dt>${x(d.key)}</dt><dd>${x(d.value)}</dd>`).join('\n');
  return page(
    info.language,
    info.title,
    `<section class="title-page" epub:type="titlepage">
<h1>${x(info.title)}</h1>
${info.author ? `<p>by ${x(info.author)}</p>` : ''}
${notice ? `<p><strong>${x(notice)}</strong></p>` : ''}
${info.summary ? `<p>${x(info.summary)}</p>` : ''}
${info.notes.map((n) => `<p>${x(n)}</p>`).join('\n')}
</section>
${details ? `<dl class="details">\n${details}\n</dl>` : ''}`,
  );
}

const partFile = (inst: StoredInstallment): string => `part-${inst.number}.xhtml`;

function partPage(info: StoryInfo, inst: StoredInstallment): string {
  const text = xhtmlFragment(installmentHtml(readingBlocks(inst)));
  return page(
    info.language,
    inst.title,
    `<section epub:type="chapter">\n<h1>${x(inst.title)}</h1>\n${text}\n</section>`,
  );
}

function nav(info: StoryInfo, installments: StoredInstallment[]): string {
  const items = installments.map((i) => `<li><a href="${partFile(i)}">${x(i.title)}</a></li>`).join('\n');
  const contents = `<li><a href="title.xhtml">${x(info.title)}</a></li>\n${items}`;
  return page(
    info.language,
    info.title,
    `<nav epub:type="toc" id="toc">\n<h1>Contents</h1>\n<ol>\n${contents}\n</ol>\n</nav>`,
  );
}

/** Seconds precision, as dcterms:modified requires. */
const modifiedDate = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function packageDocument(info: StoryInfo, installments: StoredInstallment[], id: string, modified: Date): string {
  const subjects = info.categories.map((c) => `<dc:subject>${x(c)}</dc:subject>`).join('\n    ');
  const parts = installments
    .map((i) => `<item id="part-${i.number}" href="${partFile(i)}" media-type="application/xhtml+xml" />`)
    .join('\n    ');
  const spine = installments.map((i) => `<itemref idref="part-${i.number}" />`).join('\n    ');
  return `<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="book-id" xml:lang="${x(info.language)}">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="book-id">${x(id)}</dc:identifier>
    <dc:title>${x(info.title)}</dc:title>
    <dc:language>${x(info.language)}</dc:language>
    ${info.author ? `<dc:creator>${x(info.author)}</dc:creator>` : ''}
    ${info.summary ? `<dc:description>${x(info.summary)}</dc:description>` : ''}
    ${subjects}
    <meta property="dcterms:modified">${modifiedDate(modified)}</meta>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav" />
    <item id="style" href="style.css" media-type="text/css" />
    <item id="title" href="title.xhtml" media-type="application/xhtml+xml" />
    ${parts}
  </manifest>
  <spine>
    <itemref idref="title" />
    ${spine}
  </spine>
</package>
`;
}

const CONTAINER = `<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml" />
  </rootfiles>
</container>
`;

/**
 * The EPUB bytes. Its identifier comes from the story's address and the installments' text
 * hashes, and its dates from the installments, so the same story gives the same bytes.
 */
export function buildEpub(info: StoryInfo, installments: StoredInstallment[], opts: { homeUrl: string }): Buffer {
  const digest = createHash('sha256')
    .update(opts.homeUrl)
    .update(installments.map((i) => i.hash).join('|'))
    .digest('hex');
  const id =
    `urn:uuid:${digest.slice(0, 8)}-${digest.slice(8, 12)}-` +
    `5${digest.slice(13, 16)}-a${digest.slice(17, 20)}-${digest.slice(20, 32)}`;
  const times = installments
    .flatMap((i) => [i.publishedAt, i.frozenAt])
    .filter((t): t is string => t !== null)
    .map(Date.parse);
  const modified = new Date(times.length > 0 ? Math.max(...times) : 0);
  const files: Zippable = {
    // First and stored: readers identify the file by these bytes at a fixed offset.
    mimetype: [strToU8(EPUB_CONTENT_TYPE), { level: 0 }],
    'META-INF/container.xml': strToU8(CONTAINER),
    'OEBPS/content.opf': strToU8(packageDocument(info, installments, id, modified)),
    'OEBPS/nav.xhtml': strToU8(nav(info, installments)),
    'OEBPS/style.css': strToU8(CSS),
    'OEBPS/title.xhtml': strToU8(titlePage(info)),
  };
  for (const inst of installments) files[`OEBPS/${partFile(inst)}`] = strToU8(partPage(info, inst));
  return Buffer.from(
    zipSync(files, { level: 9, mtime: modified.getTime() > 0 ? modified : new Date('1980-01-01T00:00:00Z') }),
  );
}
