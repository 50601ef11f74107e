// A reader's first visit in a real browser (Debian's Chromium through playwright-core),
// with no mail server: subscribe on the home page, read the confirmation in the local
// outbox, follow its link and confirm.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { App } from '../../src/app.ts';
import { startServing, type Serving } from '../../src/commands/serve.ts';
import { PACKAGE_ROOT } from '../../src/config.ts';
import { sendRun } from '../../src/deliver/send.ts';
import { listOutbox } from '../../src/deliver/transport.ts';
import { createLogger } from '../../src/log.ts';
import { launchChromium } from '../../src/render/chromium.ts';
import { freePort } from '../helpers/net.ts';
import { makeProject, type Project } from '../helpers/project.ts';

const OUTPUT_DIR = path.join(PACKAGE_ROOT, 'test-output');
describe('subscribing in a browser, confirming from the local outbox', () => {
  let project: Project;
  let app: App;
  let serving: Serving;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const failed: string[] = [];

  before(async () => {
    const port = await freePort();
    project = makeProject({
      settings: { baseUrl: `http://127.0.0.1:${port}`, story: { file: 'story.txt', rating: 'Mature' } },
    });
    app = project.open();
    serving = await startServing(app, createLogger({ level: 'silent', pretty: false }), { host: '127.0.0.1', port });
    assert.equal(serving.runtime.transport.kind, 'outbox', 'no smtpUrl: mail goes to the local outbox');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    // CSP violations and broken resources show up here.
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`${m.text()} ${m.location().url}`);
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
    });
  });

  after(async () => {
    await browser?.close();
    await serving?.stop();
    project?.cleanup();
  });

  it('subscribe → outbox → confirmation link → confirm button → active', async () => {
    await page.goto(serving.url);
    await assertHeading(page, "The Lamplighter's Ledger");
    mkdirSync(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'home.png'), fullPage: true });

    const email = 'browser.reader@example.org';
    await page.getByLabel('Your email address').fill(email);
    // The story is rated Mature: without the adult box the server refuses, and says why.
    const adult = page.locator('input[name=adult]');
    assert.equal(await adult.count(), 1, 'the form asks adult readers to confirm their age');
    await page.getByRole('button', { name: 'Subscribe' }).click();
    await page.waitForLoadState();
    assert.match((await page.getByRole('alert').textContent()) ?? '', /please confirm you are an adult/);
    assert.equal(app.store.subscribers.byEmail(email), undefined);

    assert.equal(await page.getByLabel('Your email address').inputValue(), email, 'the address is kept');
    await adult.check();
    await Promise.all([
      page.waitForURL('**/subscribe/check-inbox'),
      page.getByRole('button', { name: 'Subscribe' }).click(),
    ]);
    await assertHeading(page, 'Check your inbox');
    assert.equal(app.store.subscribers.byEmail(email)?.status, 'pending');
    await serving.runtime.subscriptions.settled();

    await page.getByRole('link', { name: 'Local outbox' }).click();
    await assertHeading(page, 'Local outbox');
    await page
      .getByRole('row', { name: new RegExp(email.replace(/\./g, '\\.')) })
      .getByRole('link', { name: /^Confirm your subscription/ })
      .click();
    await assertHeading(page, /^Confirm your subscription to /);
    const frame = page.frameLocator('iframe[title="Email as HTML"]');
    await frame.getByRole('link', { name: 'Confirm my subscription' }).waitFor();

    await page.locator('ul.links').getByRole('link', { name: 'Confirm my subscription' }).click();
    await page.waitForURL('**/confirm?token=*');
    await assertHeading(page, 'Confirm your subscription');
    assert.equal(app.store.subscribers.byEmail(email)?.status, 'pending', 'opening the link changes nothing');

    await page.getByRole('button', { name: 'Confirm my subscription' }).click();
    await assertHeading(page, "You're subscribed");
    const sub = app.store.subscribers.byEmail(email);
    assert.equal(sub?.status, 'active');
    assert.equal(sub.confirmIp, '127.0.0.1');

    await serving.runtime.subscriptions.settled();
    await page.goto(new URL('/outbox', serving.url).href);
    await page
      .getByRole('link', { name: /^Welcome to / })
      .first()
      .waitFor();
    assert.deepEqual(failed, ['POST /subscribe 400'], 'only the refusal without the adult box failed');
    // The one console error: the browser reporting that refused POST.
    assert.deepEqual(consoleErrors, [
      `Failed to load resource: the server responded with a status of 400 (Bad Request) ${new URL('/subscribe', serving.url).href}`,
    ]);
  });
});

async function assertHeading(page: Page, name: string | RegExp): Promise<void> {
  await page.getByRole('heading', { level: 1, name }).waitFor({ timeout: 10_000 });
}

// A paced reader opens "Your reading calendar" from an installment email in Chromium set
// to Kolkata time: the zone is preselected by our script (no CSP error), and the choices
// saved, paused and resumed through the real form.
describe("changing one's reading calendar from an email's link", () => {
  let project: Project;
  let app: App;
  let serving: Serving;
  let browser: Browser;

  before(async () => {
    const port = await freePort();
    project = makeProject({
      settings: {
        baseUrl: `http://127.0.0.1:${port}`,
        mode: 'paced',
        readers: { time: '07:00', timezone: 'Europe/Paris' },
      },
    });
    app = project.open();
    serving = await startServing(app, createLogger({ level: 'silent', pretty: false }), { host: '127.0.0.1', port });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await serving?.stop();
    project?.cleanup();
  });

  it("opens the form from the email, guesses the browser's zone, saves, pauses and resumes", async () => {
    const email = 'calendar.reader@example.org';
    const sub = app.store.subscribers.create({ email, status: 'active' });
    await sendRun(serving.runtime.send);
    const sent = listOutbox(app.config.paths.outbox).find((m) => m.to === email)!;
    const href = /<a href="([^"]+)"[^>]*>Your reading calendar<\/a>/.exec(sent.html)?.[1]?.replace(/&amp;/g, '&');
    assert.ok(
      href?.startsWith(`${app.config.baseUrl}/preferences?token=`),
      "the installment email carries the reader's calendar link",
    );
    assert.ok(sent.text.includes(`Your reading calendar\n${href}`), 'and so does its text part');

    const context = await browser.newContext({ timezoneId: 'Asia/Kolkata', viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    await page.goto(href!);
    await assertHeading(page, 'Your reading calendar');
    const zone = await page.getByLabel('Time zone').inputValue();
    assert.match(zone, /^Asia\/(Kolkata|Calcutta)$/, "the browser's own zone is preselected");
    assert.match(
      (await page.locator('#calendar-now').textContent()) ?? '',
      /one installment at each of the story’s scheduled runs/,
    );

    await page.getByLabel('Weekdays (Monday to Friday)').check();
    await page.getByLabel('Time of day').fill('06:45');
    await page.getByRole('button', { name: 'Save my calendar' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const saved = app.store.subscribers.get(sub.id)!;
    assert.deepEqual(
      [saved.choices.cadence, saved.choices.sendMinute, saved.choices.timezone],
      ['weekdays', 6 * 60 + 45, zone],
    );
    assert.ok(saved.nextDueAt, 'the reader now has a next delivery time');
    assert.match(
      (await page.locator('#calendar-now').textContent()) ?? '',
      /Your next installment: \w+day, .* at 6:45 AM \(Asia\/(Kolkata|Calcutta)\)\./,
    );

    // Pause until a date two weeks ahead, then resume.
    const until = new Date(Date.now() + 14 * 86_400_000).toISOString().slice(0, 10);
    await page.getByLabel('Pause until').fill(until);
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await page.getByRole('heading', { name: 'Paused' }).waitFor();
    assert.equal(app.store.subscribers.get(sub.id)!.choices.pausedUntil, until);
    assert.ok(app.store.subscribers.get(sub.id)!.nextDueAt! >= until, 'nothing is due before the pause ends');
    await page.getByRole('button', { name: 'Resume now' }).click();
    await page.getByRole('status').filter({ hasText: 'Resumed.' }).waitFor();
    assert.equal(app.store.subscribers.get(sub.id)!.choices.pausedUntil, null);

    // A form posted without its CSRF cookie is refused and changes nothing.
    const token = new URL(href!).searchParams.get('token')!;
    const forged = await fetch(new URL('/preferences', serving.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, action: 'resume' }).toString(),
    });
    assert.equal(forged.status, 403);
    assert.deepEqual(problems, [], 'no CSP violation or script error');
    await context.close();
  });
});
