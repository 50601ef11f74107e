// The context every command works in: validated config, parsed story, open store with
// installments in step with the story. Built in that order so that a bad story or config
// fails before the database is opened or changed.
import { randomBytes } from 'node:crypto';
import type { Config } from './config.ts';
import { Store } from './store/index.ts';
import { syncInstallments } from './story/freeze.ts';
import { storyInfo, type StoryInfo } from './story/info.ts';
import { parseStory } from './story/parse.ts';
import type { ParsedStory } from './story/types.ts';

export interface App {
  config: Config;
  store: Store;
  story: ParsedStory;
  info: StoryInfo;
  /** Signs links and form tokens: config/env, else generated once and kept in the db. */
  secret: string;
  /** Random per database, made once: keeps Message-IDs of different installs apart. */
  instanceId: string;
  /** Things the author should know (edited frozen installments, where the title came from). */
  warnings: string[];
}

export function openApp(config: Config): App {
  const story = parseStory(config.paths.story);
  const info = storyInfo(config, story);
  const store = Store.open(config.paths.db);
  try {
    const { warnings } = syncInstallments(story.blocks, store.installments, config.split);
    const secret = config.secret ?? store.meta.getOrInit('secret', () => randomBytes(32).toString('base64url'));
    const instanceId = store.meta.getOrInit('instance_id', () => randomBytes(5).toString('hex'));
    return { config, store, story, info, secret, instanceId, warnings };
  } catch (err) {
    store.close();
    throw err;
  }
}
