// The cached public pages carry an entity tag for each visitor's copy: a visitor whose copy
// is still current (same published state, same CSRF cookie) gets a 304, and the token in
// that copy still posts the subscribe form. Anyone else gets the page, with the headers
// every page has.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CONTENT_SECURITY_POLICY } from '../../src/web/server.ts';
import { Store } from '../../src/store/index.ts';
import { startSite, type Site } from '../helpers/feeds-site.ts';
import { Client } from '../helpers/form-client.ts';
import { makeProject, type Project } from '../helpers/project.ts';

/** The `_csrf=value` pair of a reply's Set-Cookie, if it sets one. */
const csrfCookie = (res: Response): string | undefined =>
  res.headers
    .getSetCookie()
    .find((c) => c.startsWith('_csrf='))
    ?.split(';')[0];

function assertPageHeaders(res: Response): void {
  assert.equal(res.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(res.headers.get('x-frame-options'), 'SAMEORIGIN');
  assert.equal(res.headers.get('cache-control'), 'private, no-cache', 'a copy holds its visitor’s token');
  assert.equal(res.headers.get('vary'), 'cookie');
}

describe('cached pages: entity tags per visitor', () => {
  let project: Project;
  let site: Site;
  before(async () => {
    project = makeProject();
    site = await startSite(project);
    site.app.store.installments.markPublished(1);
  });
  after(async () => {
    await site.stop();
    project.cleanup();
  });

  for (const path of ['/', '/installments/1']) {
    it(`${path}: a new visitor gets the page, a secret cookie and a weak ETag; their next visit a 304`, async () => {
      const first = await site.get(path);
      assert.equal(first.status, 200);
      assertPageHeaders(first);
      const cookie = csrfCookie(first);
      assert.match(cookie ?? '', /^_csrf=[A-Za-z0-9_-]{24}$/);
      assert.match(first.headers.getSetCookie().join(), /; Path=\/; HttpOnly; SameSite=Strict/);
      const etag = first.headers.get('etag')!;
      assert.match(etag, /^W\/"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}"$/);

      const again = await site.get(path, { cookie: cookie!, 'if-none-match': etag });
      assert.equal(again.status, 304);
      assert.equal(await again.text(), '');
      assert.equal(again.headers.get('etag'), etag);
      assert.equal(csrfCookie(again), undefined, 'the visitor keeps their secret');
      assertPageHeaders(again);

      // The same visitor without If-None-Match gets the page again, under the same tag.
      const plain = await site.get(path, { cookie: cookie! });
      assert.equal(plain.status, 200);
      assert.equal(plain.headers.get('etag'), etag);
      assert.equal(csrfCookie(plain), undefined);
    });
  }

  it('a copy whose token does not fit the cookie sent is never confirmed', async () => {
    const a = await site.get('/');
    const b = await site.get('/');
    const [etagA, cookieA, cookieB] = [a.headers.get('etag')!, csrfCookie(a)!, csrfCookie(b)!];
    assert.notEqual(cookieA, cookieB);
    assert.notEqual(etagA, b.headers.get('etag'));
    // Cookie lost (a new browser session): a fresh page, secret and tag.
    const lost = await site.get('/', { 'if-none-match': etagA });
    assert.equal(lost.status, 200);
    assert.ok(csrfCookie(lost));
    assert.notEqual(lost.headers.get('etag'), etagA);
    // Another visitor's tag with this visitor's cookie.
    const crossed = await site.get('/', { cookie: cookieB, 'if-none-match': etagA });
    assert.equal(crossed.status, 200);
    assert.equal(crossed.headers.get('etag'), b.headers.get('etag'));
    // The tag of the other page.
    const other = await site.get('/installments/1', { cookie: cookieA, 'if-none-match': etagA });
    assert.equal(other.status, 200);
  });

  it('the token of a copy confirmed by 304s still posts the form', async () => {
    const first = await site.get('/');
    const [cookie, etag] = [csrfCookie(first)!, first.headers.get('etag')!];
    const token = /name="_csrf" value="([^"]+)"/.exec(await first.text())![1]!;
    for (let i = 0; i < 2; i++) assert.equal((await site.get('/', { cookie, 'if-none-match': etag })).status, 304);
    const form = { email: 'kept@example.org', _csrf: token, website: '', adult: 'yes' };
    assert.equal((await new Client(site, { cookie }).post('/subscribe', form)).res.status, 303);
  });

  it('a publication, even by another process, makes every copy stale at once', async () => {
    const first = await site.get('/');
    const [cookie, etag] = [csrfCookie(first)!, first.headers.get('etag')!];
    const other = Store.open(project.config().paths.db);
    try {
      other.installments.markPublished(2);
    } finally {
      other.close();
    }
    const after = await site.get('/', { cookie, 'if-none-match': etag });
    assert.equal(after.status, 200);
    assert.notEqual(after.headers.get('etag'), etag);
    assert.match(await after.text(), /href="[^"]*\/installments\/2"/);
  });

  it('a page that does not exist has no tag, whatever is asked', async () => {
    const missing = await site.get('/installments/40', { 'if-none-match': '*' });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('etag'), null);
  });

  it('every new visitor gets a secret of their own (past one batch of random bytes)', async () => {
    const secrets = new Set<string>();
    for (let i = 0; i < 300; i++) secrets.add(csrfCookie(await site.get('/'))!);
    assert.equal(secrets.size, 300);
  });
});
