// `feuilleton preview` shows the installment email with the date the schedule will really
// print in it, and no date at all when nothing is scheduled.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { preview } from '../../src/commands/preview.ts';
import { makeProject, type Project } from '../helpers/project.ts';

const projects: Project[] = [];
after(() => projects.forEach((p) => p.cleanup()));

async function nextLine(schedule: Record<string, unknown>, mode = 'broadcast'): Promise<string | undefined> {
  const project = makeProject({ settings: { schedule, mode } });
  projects.push(project);
  const app = project.open();
  try {
    const [, txt] = await preview(app, undefined, { png: false, outDir: path.join(project.dir, 'preview') });
    return /^Next installment: (.*)$/m.exec(readFileSync(txt!, 'utf8'))?.[1];
  } finally {
    app.store.close();
  }
}

describe('preview: the next installment date', () => {
  test("is the run after the one that will send this installment, in the schedule's time zone", async () => {
    // Once a year, on 1 January: the next unpublished installment goes at the coming one,
    // and its email names the one after that.
    const line = await nextLine({ enabled: true, cron: '0 7 1 1 *', timezone: 'UTC' });
    const now = new Date();
    const sentAt =
      now.getUTCMonth() === 0 && now.getUTCDate() === 1 && now.getUTCHours() < 7
        ? now.getUTCFullYear()
        : now.getUTCFullYear() + 1;
    assert.ok(line, 'a next installment line');
    assert.match(line, /January/);
    assert.match(line, new RegExp(`\\b${sentAt + 1}\\b`), line);
  });

  test('is left out when the schedule is off', async () => {
    assert.equal(await nextLine({ enabled: false }), undefined);
  });
});
