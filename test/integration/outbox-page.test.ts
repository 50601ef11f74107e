// The local outbox as a newcomer meets it on a phone-sized screen: while the confirmation is
// on its way the empty page says so and refreshes itself; nothing on the list or on a
// message is wider than a 375 px viewport.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../../src/render/chromium.ts';
import { startSite, type Site } from '../helpers/feeds-site.ts';
import { Client } from '../helpers/form-client.ts';
import { makeProject, type Project } from '../helpers/project.ts';

describe('the outbox page', () => {
  let project: Project;
  let site: Site;
  let browser: Browser;
  let page: Page;

  before(async () => {
    project = makeProject();
    site = await startSite(project);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 375, height: 740 } });
  });
  after(async () => {
    await browser?.close();
    await site?.stop();
    project?.cleanup();
  });

  /** The widest thing on the page, against the viewport. */
  const overflow = () =>
    page.evaluate<{ scrollWidth: number; wide: string[] }>(`(() => {
      const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5).map((e) => e.tagName.toLowerCase() + '.' + e.className);
      return { scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 5) };
    })()`);

  test('empty: says the email may take a few seconds, and refreshes itself (no script)', async () => {
    const res = await site.get('/outbox');
    const body = await res.text();
    assert.match(body, /<meta http-equiv="refresh" content="\d+">/);
    assert.match(body, /empty/i);
    assert.match(body, /a few seconds/);
    assert.doesNotMatch(body, /<script/i);
    // In a real browser: the page left open shows the confirmation once it is written.
    await page.goto(`${site.serving.url}outbox`);
    await new Client(site.serving.url).subscribe('waiting.reader@example.org');
    await page
      .getByRole('link', { name: /Confirm/ })
      .first()
      .waitFor({ timeout: 15_000 });
  });

  test('with messages: no auto-refresh, and nothing wider than 375 px on the list and on a message', async () => {
    await new Client(site.serving.url).subscribe('a.rather.long.address.for.a.small.screen@subscribers.example.org');
    await site.serving.runtime.subscriptions.settled();
    await site.serving.runtime.notices.drain();
    await page.goto(`${site.serving.url}outbox`);
    assert.equal(await page.locator('meta[http-equiv=refresh]').count(), 0, 'a page with mail stays still');
    assert.deepEqual(await overflow(), { scrollWidth: 375, wide: [] }, 'the list fits');
    await page
      .getByRole('row', { name: /a\.rather\.long/ })
      .getByRole('link', { name: /Confirm/ })
      .click();
    await page.waitForLoadState();
    assert.match((await page.locator('table.outbox-headers').textContent()) ?? '', /a\.rather\.long/);
    assert.deepEqual(await overflow(), { scrollWidth: 375, wide: [] }, 'the message fits');
  });
});
