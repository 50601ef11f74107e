// Public pages are rendered once per published state: what a visitor sees must still be
// current the moment another process (a `send`) publishes, and each visitor's form must
// carry their own CSRF token.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Store } from '../../src/store/index.ts';
import { startSite, type Site } from '../helpers/feeds-site.ts';
import { Client } from '../helpers/form-client.ts';
import { makeProject, type Project } from '../helpers/project.ts';

describe('pages cached per published state', () => {
  let project: Project;
  let site: Site;
  before(async () => {
    project = makeProject();
    site = await startSite(project);
  });
  after(async () => {
    await site.stop();
    project.cleanup();
  });

  it('follow a publication made by another process at once', async () => {
    const first = await site.get('/');
    assert.doesNotMatch(await first.text(), /href="[^"]*\/installments\/1"/);
    assert.equal((await site.get('/installments/1')).status, 404);

    // Another connection to the same file, as `feuilleton send` in its own process has.
    const other = Store.open(project.config().paths.db);
    try {
      other.installments.markPublished(1);
    } finally {
      other.close();
    }
    assert.match(await (await site.get('/')).text(), /href="[^"]*\/installments\/1"/);
    assert.equal((await site.get('/installments/1')).status, 200);
    assert.equal((await site.get('/installments/2')).status, 404);
  });

  it('give each visitor a CSRF token of their own, which their form post is accepted with', async () => {
    const a = new Client(site);
    const b = new Client(site);
    const [ta, tb] = [await a.csrfToken(), await b.csrfToken()];
    assert.notEqual(ta, tb);
    assert.doesNotMatch(await (await site.get('/')).text(), /csrfslot/, 'the stand-in never reaches a visitor');
    assert.equal((await a.subscribe('cache-a@example.org')).res.status, 303);
    assert.equal(
      (await b.post('/subscribe', { email: 'cache-b@example.org', _csrf: ta, website: '', adult: 'yes' })).res.status,
      403,
      "another visitor's token is refused",
    );
  });
});
