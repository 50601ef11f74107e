import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { App } from '../../src/app.ts';
import { Store } from '../../src/store/index.ts';
import type { StoredInstallment } from '../../src/store/installments.ts';
import { generatedStory, makeProject, type Project } from '../helpers/project.ts';

// 45 paragraphs of 20–100 words, split at 500 words: about five installments.
const STORY = generatedStory(45, 3);
const settings = { split: { targetWords: 500 } };

let project: Project;
afterEach(() => project?.cleanup());

const paragraphsOf = (text: string): string[] => text.split('\n\n');

/** Opens the project's app, runs `fn`, and always closes the database. */
function withApp<T>(fn: (app: App) => T): T {
  const app = project.open();
  try {
    return fn(app);
  } finally {
    app.store.close();
  }
}

/** Publishes installments 1 and 2 and returns the split as it was then. */
const publishFirstTwo = (): StoredInstallment[] =>
  withApp((app) => {
    app.store.installments.markPublished(1);
    app.store.installments.markPublished(2);
    return app.store.installments.all();
  });

describe('frozen installments', () => {
  test('the split is recorded in SQLite in WAL mode', () => {
    project = makeProject({ story: STORY, settings });
    const app = project.open();
    try {
      assert.equal(app.store.db.pragma('journal_mode', { simple: true }), 'wal');
      assert.ok(app.store.installments.all().length >= 4);
    } finally {
      app.store.close();
    }
  });

  test('an edit inside a published installment is reported by number and never applied', () => {
    project = makeProject({ story: STORY, settings });
    const before = publishFirstTwo();

    const paras = paragraphsOf(STORY);
    const target = before[1]!.blocks[0]!.text; // first paragraph of installment 2
    const edited = STORY.replace(target, `${target} An added sentence.`);
    assert.notEqual(edited, STORY);
    assert.equal(paragraphsOf(edited).length, paras.length);
    project.writeStory(edited);

    const app = project.open();
    try {
      assert.equal(app.warnings.length, 1);
      assert.match(app.warnings[0]!, /installment 2 \("Part 2"\).*published.*not applied/);
      const after = app.store.installments.all();
      assert.deepEqual(after[1]!.blocks, before[1]!.blocks, 'installment 2 keeps its published text');
      assert.equal(after[1]!.hash, before[1]!.hash);
      assert.deepEqual(
        after.slice(2).map((i) => i.hash),
        before.slice(2).map((i) => i.hash),
        'the rest is aligned, not shifted',
      );
    } finally {
      app.store.close();
    }
  });

  test('editing the unpublished remainder re-splits only the remainder', () => {
    project = makeProject({ story: STORY, settings });
    const before = publishFirstTwo();

    // Append several paragraphs and delete one from the unpublished part.
    const paras = paragraphsOf(STORY.trimEnd());
    const lastBlock = before.at(-1)!.blocks.at(-1)!.text;
    const removed = before[3]!.blocks[1]!.text;
    const extra = paragraphsOf(generatedStory(8, 99, '').trim());
    project.writeStory([...paras.filter((p) => p !== removed), ...extra].join('\n\n') + '\n');

    const app = project.open();
    try {
      assert.deepEqual(app.warnings, []);
      const after = app.store.installments.all();
      assert.deepEqual(
        after.slice(0, 2).map((i) => [i.number, i.hash, i.publishedAt !== null]),
        before.slice(0, 2).map((i) => [i.number, i.hash, true]),
      );
      const rest = after.slice(2).flatMap((i) => i.blocks.map((b) => b.text));
      assert.ok(!rest.includes(removed), 'the deleted paragraph is gone from the remainder');
      assert.ok(rest.includes(lastBlock) && rest.includes(extra.at(-1)!), 'the remainder includes old and new text');
      assert.deepEqual(
        after.map((i) => i.number),
        after.map((_, k) => k + 1),
        'numbers continue without gaps',
      );
    } finally {
      app.store.close();
    }
  });

  test('re-opening an unchanged story changes nothing', () => {
    project = makeProject({ story: STORY, settings });
    const rows = withApp((app) => app.store.installments.all());
    withApp((app) => {
      assert.deepEqual(app.store.installments.all(), rows);
      assert.deepEqual(app.warnings, []);
    });
  });

  test('a bad story file fails before the database is touched', () => {
    project = makeProject({ story: STORY, settings });
    // Published, so a wiped and re-split table could not come back looking the same.
    const rows = withApp((app) => {
      app.store.installments.markPublished(1);
      return app.store.installments.all();
    });
    project.writeStory('');
    assert.throws(() => project.open(), /is empty/);
    // Read while the bad story is still in place: nothing may have re-split it yet.
    const store = Store.open(project.config().paths.db);
    try {
      assert.deepEqual(store.installments.all(), rows);
    } finally {
      store.close();
    }
  });
});
