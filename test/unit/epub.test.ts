// The whole story as an EPUB, checked the way an e-reader opens it: the OCF container
// (mimetype first and stored), the package document's metadata and spine, every XHTML
// document well-formed (Python's XML parser, not ours), and epubcheck when installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { strFromU8, unzipSync } from 'fflate';
import type { App } from '../../src/app.ts';
import { buildEpub, EPUB_CONTENT_TYPE } from '../../src/publish/epub.ts';
import { generatedStory, makeProject, type Project } from '../helpers/project.ts';

const run = promisify(execFile);
const EPUBCHECK = '/usr/share/java/epubcheck.jar';
const HEADER =
  'Title: Bells & <Whistles>\nAuthor: R. Quill\nRating: M\nCategory: Drama, Romance\nWarnings: grief\nA short story, complete.\n';
const LETTER = 'Dear Anna,\nthe roses are in. <b>Not bold</b> & co.\nLove, M.';

describe('buildEpub', () => {
  let project: Project;
  let app: App;
  let bytes: Buffer;
  let files: Record<string, Uint8Array>;

  before(() => {
    const story = generatedStory(20, 5, HEADER).replace(/\n\n/, `\n\n${LETTER}\n\n* * *\n\n`);
    project = makeProject({ story, settings: { split: { targetWords: 300 } } });
    app = project.open();
    for (const i of app.store.installments.all())
      app.store.installments.markPublished(i.number, `2024-05-0${i.number}T07:00:00.000Z`);
    bytes = buildEpub(app.info, app.store.installments.all(), { homeUrl: 'https://serial.example.org/' });
    files = unzipSync(bytes);
  });

  after(() => {
    app.store.close();
    project.cleanup();
  });

  it('starts with the mimetype entry, stored uncompressed, as the OCF container requires', () => {
    assert.equal(bytes.readUInt32LE(0), 0x04034b50, 'a local file header first');
    assert.equal(bytes.readUInt16LE(8), 0, 'compression method 0 (stored)');
    const nameLength = bytes.readUInt16LE(26);
    const extraLength = bytes.readUInt16LE(28);
    assert.equal(bytes.toString('latin1', 30, 30 + nameLength), 'mimetype');
    const start = 30 + nameLength + extraLength;
    assert.equal(bytes.toString('latin1', start, start + EPUB_CONTENT_TYPE.length), EPUB_CONTENT_TYPE);
    assert.equal(strFromU8(files['mimetype']!), EPUB_CONTENT_TYPE);
  });

  it('points META-INF/container.xml at a package document with the story\u2019s metadata and every installment in the spine, in order', () => {
    assert.match(
      strFromU8(files['META-INF/container.xml']!),
      /<rootfile full-path="OEBPS\/content\.opf" media-type="application\/oebps-package\+xml"/,
    );
    const opf = strFromU8(files['OEBPS/content.opf']!);
    assert.match(opf, /<dc:title>Bells &amp; &lt;Whistles&gt;<\/dc:title>/);
    assert.match(opf, /<dc:creator>R\. Quill<\/dc:creator>/);
    assert.match(opf, /<dc:language>en<\/dc:language>/);
    assert.match(opf, /<dc:identifier id="book-id">urn:uuid:[0-9a-f-]{36}<\/dc:identifier>/);
    assert.match(opf, /<meta property="dcterms:modified">\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<\/meta>/);
    assert.match(opf, /<dc:subject>Drama<\/dc:subject>\s*<dc:subject>Romance<\/dc:subject>/);
    const spine = [...opf.matchAll(/<itemref idref="([^"]+)"/g)].map((m) => m[1]);
    const total = app.store.installments.count().total;
    assert.ok(total >= 3);
    assert.deepEqual(spine, ['title', ...Array.from({ length: total }, (_, i) => `part-${i + 1}`)]);
    for (const m of opf.matchAll(/<item id="[^"]+" href="([^"]+)"/g))
      assert.ok(files[`OEBPS/${m[1]}`], `${m[1]} is in the zip`);
  });

  it('writes well-formed XHTML with the author\u2019s words, escaped, and their line breaks', async () => {
    const docs = Object.keys(files).filter((f) => f.endsWith('.xhtml') || f.endsWith('.opf') || f.endsWith('.xml'));
    const dir = project.dir;
    for (const f of docs) writeFileSync(path.join(dir, f.replaceAll('/', '_')), files[f]!);
    const check = `import sys, xml.dom.minidom\nfor f in sys.argv[1:]: xml.dom.minidom.parse(f)\nprint("ok")`;
    const { stdout } = await run('python3', ['-c', check, ...docs.map((f) => path.join(dir, f.replaceAll('/', '_')))]);
    assert.equal(stdout.trim(), 'ok');
    const first = strFromU8(files['OEBPS/part-1.xhtml']!);
    assert.ok(
      first.includes('Dear Anna,<br />\nthe roses are in. &lt;b&gt;Not bold&lt;/b&gt; &amp; co.<br />\nLove, M.'),
    );
    const title = strFromU8(files['OEBPS/title.xhtml']!);
    assert.ok(title.includes('<dt>Warnings</dt><dd>grief</dd>') && title.includes('A short story, complete.'));
    assert.match(strFromU8(files['OEBPS/nav.xhtml']!), /<nav epub:type="toc"/);
  });

  it('gives the same bytes for the same story', () => {
    assert.ok(
      bytes.equals(buildEpub(app.info, app.store.installments.all(), { homeUrl: 'https://serial.example.org/' })),
    );
  });

  // Debian's epubcheck is a jar (its /usr/bin entry relies on binfmt, absent in containers).
  it(
    'passes epubcheck',
    { skip: !existsSync(EPUBCHECK) && 'epubcheck is not installed (apt-get install epubcheck)' },
    async () => {
      const file = path.join(project.dir, 'story.epub');
      writeFileSync(file, bytes);
      const result = await run('java', ['-jar', EPUBCHECK, file]).catch(
        (err: { stdout: string; stderr: string }) => err,
      );
      assert.ok(!('code' in result), `${result.stdout}\n${result.stderr}`);
    },
  );
});
