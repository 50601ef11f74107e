// Reads our feeds with parsers we did not write: Python's feedparser for RSS and Atom, and
// Python's json module plus the JSON Feed 1.1 required fields for JSON Feed (the Debian
// feedparser, 6.0, has no JSON Feed support). Every text comes back as plain text:
// HTML-typed values are unmarked and unescaped, whitespace runs collapsed.
import { execFileSync } from 'node:child_process';

export interface ParsedEntry {
  id: string;
  title: string;
  link: string;
  /** XML formats: the title element's character data exactly as an XML parser (ElementTree) reads it, before any HTML reading. */
  rawTitle: string | null;
  /** The content as plain text. */
  content: string;
  published: string | null;
  tags: string[];
}

export interface ParsedFeed {
  /** feedparser's bozo flag: 0 when the document was well-formed and understood. */
  bozo: number;
  problems: string[];
  version: string;
  title: string;
  language: string | null;
  /** The channel image (RSS image, Atom logo, JSON Feed icon). */
  image: string | null;
  entries: ParsedEntry[];
}

const SCRIPT = String.raw`
import html, json, re, sys
import xml.etree.ElementTree as ET
import feedparser

ATOM = '{http://www.w3.org/2005/Atom}'

BLOCK = re.compile(r'</?(?:p|h[1-6]|div|br|li|blockquote)\b[^>]*>', re.I)

def plain(value, kind='text/html'):
    if kind in ('text/html', 'application/xhtml+xml'):
        value = html.unescape(re.sub(r'<[^>]*>', '', BLOCK.sub(' ', value)))
    return ' '.join(value.split())

def from_json(raw):
    doc = json.loads(raw)
    problems = []
    if doc.get('version') != 'https://jsonfeed.org/version/1.1':
        problems.append('version is %r' % doc.get('version'))
    if not isinstance(doc.get('title'), str):
        problems.append('no title')
    for item in doc.get('items', []):
        if not isinstance(item.get('id'), str):
            problems.append('item without a string id')
        if 'content_html' not in item and 'content_text' not in item:
            problems.append('item %s without content' % item.get('id'))
    return {
        'bozo': 1 if problems else 0,
        'problems': problems,
        'version': doc.get('version'),
        'title': doc.get('title'),
        'language': doc.get('language'),
        'image': doc.get('icon'),
        'entries': [{
            'id': i['id'],
            'title': i.get('title', ''),
            'link': i.get('url', ''),
            'rawTitle': None,
            'content': plain(i.get('content_html', '')),
            'published': i.get('date_published'),
            'tags': i.get('tags', []),
        } for i in doc.get('items', [])],
    }

def from_xml(raw):
    d = feedparser.parse(raw)
    def text(detail):
        return plain(detail.value, detail.type)
    root = ET.fromstring(raw)
    raw_titles = [t.text or '' for t in (root.findall('./channel/item/title') if root.tag == 'rss' else root.findall(ATOM + 'entry/' + ATOM + 'title'))]
    return {
        'bozo': int(bool(d.bozo)),
        'problems': [str(d.get('bozo_exception'))] if d.bozo else [],
        'version': d.version,
        'title': text(d.feed.title_detail),
        'language': d.feed.get('language'),
        'image': d.feed.get('image', {}).get('href') or d.feed.get('logo'),
        'entries': [{
            'id': e.id,
            'title': text(e.title_detail),
            'link': e.link,
            'rawTitle': raw_titles[k],
            'content': text(e.content[0]),
            'published': e.get('published'),
            'tags': [t.term for t in e.get('tags', [])],
        } for k, e in enumerate(d.entries)],
    }

raw = sys.stdin.buffer.read()
print(json.dumps(from_json(raw) if sys.argv[1] == 'json' else from_xml(raw)))
`;

/** Debian's python3, where python3-feedparser is installed (the python3 on PATH is pyenv's). */
const PYTHON = '/usr/bin/python3';

export function parseFeed(bytes: Buffer | string, format: 'rss' | 'atom' | 'json'): ParsedFeed {
  return JSON.parse(execFileSync(PYTHON, ['-c', SCRIPT, format], { input: bytes, encoding: 'utf8' })) as ParsedFeed;
}
