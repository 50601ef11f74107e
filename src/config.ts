// Loads and validates feuilleton.yaml. Every user-caused problem becomes a ConfigError that
// names the file and the key, so the CLI can print one line and exit before touching data.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import { isIP } from 'node:net';
import { z } from 'zod';
import { validateDetailed as validateCron } from 'node-cron';
import { isTimeZone, parseTimeOfDay, WEEKDAY_NAMES } from './calendar.ts';
import { UserError } from './errors.ts';

export const CONFIG_FILE_NAME = 'feuilleton.yaml';
/** The folder holding package.json: default templates and the sample story live there. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export class ConfigError extends UserError {}

const absoluteHttpUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !!u.host;
  } catch {
    return false;
  }
}, 'must be an absolute http(s) URL such as https://serial.example.org');

// Links in emails, feeds and pages are this plus a path: a query or fragment would land in
// the middle of every one of them.
const baseUrl = absoluteHttpUrl.refine((v) => {
  try {
    const u = new URL(v);
    return !u.search && !u.hash;
  } catch {
    return true; // reported by absoluteHttpUrl
  }
}, 'must not have a query (?…) or fragment (#…): every link is built by appending a path to it');

/** A proxy address or CIDR range, as fastify's trustProxy takes it. */
const proxyAddress = z.string().refine((v) => {
  const [addr, bits, extra] = v.split('/');
  if (extra !== undefined || !addr) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n >= 0 && n <= (family === 4 ? 32 : 128);
}, 'must be an IP address or CIDR range such as 127.0.0.1 or 10.0.0.0/8');

// `true` would trust an X-Forwarded-For written by anyone: rate limits and the consent
// record would take a forged address. The proxy must be named.
const trustProxy = z
  .union([z.literal(false), z.literal(true), proxyAddress, z.array(proxyAddress).min(1)])
  .refine(
    (v) => v !== true,
    "true would trust any client's X-Forwarded-For; " +
      'list your reverse proxy\'s address instead, such as 127.0.0.1 (or [127.0.0.1, "10.0.0.0/8"])',
  );

const noLineBreaks = z.string().refine((v) => !/[\r\n]/.test(v), 'must not contain line breaks');

const schema = z.strictObject({
  story: z
    .strictObject({
      file: z.string().min(1).default('story/the-lamplighters-ledger.txt'),
      title: noLineBreaks.optional(),
      author: noLineBreaks.optional(),
      summary: z.string().optional(),
      language: z
        .string()
        .regex(/^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$/, 'must be a language tag such as en or fr-CA')
        .default('en'),
      rating: noLineBreaks.optional(),
      /** Overrides what the Rating header implies. */
      adult: z.boolean().optional(),
      image: absoluteHttpUrl.optional(),
    })
    .default({ file: 'story/the-lamplighters-ledger.txt', language: 'en' }),
  split: z
    .strictObject({
      targetWords: z.number().int().min(50).optional(),
      targetMinutes: z.number().positive().max(120).default(5),
      wordsPerMinute: z.number().int().min(50).max(1000).default(230),
      partTitle: z
        .string()
        .includes('{n}', { message: 'must contain {n}, the installment number' })
        .default('Part {n}'),
    })
    .default({ targetMinutes: 5, wordsPerMinute: 230, partTitle: 'Part {n}' }),
  mode: z.enum(['broadcast', 'paced']).default('broadcast'),
  /** Unset: the server's own loopback address, following its port (refused in production). */
  baseUrl: baseUrl.optional(),
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(3000),
      /** Behind a reverse proxy: its address(es) or CIDR range(s); X-Forwarded-For is believed only from them. */
      trustProxy: trustProxy.default(false),
      /** Who may open /outbox when the outbox is the transport: loopback clients only, anyone, or nobody. */
      outboxPage: z.enum(['loopback', 'public', 'off']).default('loopback'),
    })
    .default({ host: '127.0.0.1', port: 3000, trustProxy: false, outboxPage: 'loopback' }),
  mail: z
    .strictObject({
      from: noLineBreaks.default('Feuilleton <serial@localhost>'),
      replyTo: noLineBreaks.optional(),
      /** smtp://user:pass@host:587 or smtps://…; unset means the local outbox. Env: FEUILLETON_SMTP_URL. */
      smtpUrl: z.string().optional(),
      maxConnections: z.number().int().min(1).max(100).default(5),
      ratePerSecond: z.number().positive().optional(),
      ratePerMinute: z.number().positive().optional(),
      dkim: z
        .strictObject({
          domainName: z.string().min(1),
          keySelector: z.string().min(1),
          privateKeyFile: z.string().min(1),
        })
        .optional(),
      /** Gone: it advertised a mailto: unsubscribe that nothing read. */
      unsubscribeMailto: z
        .never({
          error:
            'is no longer supported: feuilleton reads no mailbox, so a mailto: unsubscribe would do nothing; ' +
            'readers unsubscribe with the one-click link; remove the setting',
        })
        .optional(),
      /** Adds Gmail's Feedback-ID header (kind:story:feuilleton) for its complaint reports in Postmaster Tools. */
      feedbackId: z.boolean().default(false),
      postalAddress: z.string().default(''),
      listId: noLineBreaks.optional(),
      /** In production the outbox (no smtpUrl) is refused unless this names the choice. */
      outboxInProduction: z.boolean().default(false),
      /** The relay signs with DKIM itself (SES Easy DKIM, Postmark): `check` then does not ask for mail.dkim. */
      relaySignsDkim: z.boolean().default(false),
    })
    .default({
      from: 'Feuilleton <serial@localhost>',
      maxConnections: 5,
      postalAddress: '',
      outboxInProduction: false,
      relaySignsDkim: false,
      feedbackId: false,
    }),
  /**
   * Going live: the outbox is refused, `check` problems are errors. Unset, it is on when
   * NODE_ENV=production or baseUrl is not a loopback address.
   */
  production: z.boolean().optional(),
  /** Signs unsubscribe links and form tokens. Env: FEUILLETON_SECRET. Generated and kept in the db when unset. */
  secret: z.string().min(16, 'must be at least 16 characters').optional(),
  subscribe: z
    .strictObject({
      rateLimitMax: z.number().int().min(1).default(5),
      rateLimitWindowSeconds: z.number().int().min(1).default(600),
      tokenTtlHours: z.number().positive().default(48),
      /** An already active or pending address is mailed again at most once per this many hours. */
      resendIntervalHours: z.number().nonnegative().default(24),
      /** A pending address gets a new confirmation email at most once per this many minutes. */
      confirmResendMinutes: z.number().nonnegative().default(10),
      maxBodyBytes: z.number().int().min(256).default(8192),
      /** Readers who never confirmed are deleted (with their consent record) after this many days. */
      pendingDays: z.number().positive().default(7),
    })
    .default({
      rateLimitMax: 5,
      rateLimitWindowSeconds: 600,
      tokenTtlHours: 48,
      resendIntervalHours: 24,
      confirmResendMinutes: 10,
      maxBodyBytes: 8192,
      pendingDays: 7,
    }),
  delivery: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(50).default(6),
      backoffBaseMs: z.number().int().min(0).default(1000),
      backoffMaxMs: z.number().int().min(0).default(60_000),
      /**
       * What a restart does with rows a crash left in `sending`: re-send them (reported as
       * possible duplicates) or mark them failed.
       */
      inFlightPolicy: z.enum(['resend', 'fail']).default('resend'),
      /** Hard bounces (5xx) after which a subscriber is marked bounced. */
      bounceLimit: z.number().int().min(1).default(3),
      /** Paced mode: "send me the next one now" requests per subscriber per hour. */
      nextNowPerHour: z.number().int().min(0).default(3),
      /** This many permanent refusals in a row with the same reply class pause the run as a relay problem. */
      breakerThreshold: z.number().int().min(2).default(20),
      /** On SIGTERM, how long mail in flight may take before the process exits anyway (the rest stays queued). */
      shutdownGraceSeconds: z.number().int().min(1).max(300).default(10),
    })
    .default({
      maxAttempts: 6,
      backoffBaseMs: 1000,
      backoffMaxMs: 60_000,
      inFlightPolicy: 'resend',
      bounceLimit: 3,
      nextNowPerHour: 3,
      breakerThreshold: 20,
      shutdownGraceSeconds: 10,
    }),
  schedule: z
    .strictObject({
      enabled: z.boolean().default(true),
      cron: z
        .string()
        .superRefine((v, ctx) => {
          const problem = validateCron(v).errors[0];
          if (problem)
            ctx.addIssue({
              code: 'custom',
              message:
                `"${v}" is not a cron expression (${problem.message}); ` +
                'write minute hour day-of-month month day-of-week, such as "0 7 * * 1,4"',
            });
        })
        .default('0 7 * * 1,4'),
      timezone: z
        .string()
        .superRefine((v, ctx) => {
          if (!isTimeZone(v))
            ctx.addIssue({
              code: 'custom',
              message: `"${v}" is not a known time zone; use an IANA name such as Europe/Paris or UTC`,
            });
        })
        .default('UTC'),
      /** On start, send once if a scheduled run was missed while the server was down. */
      catchUp: z.boolean().default(true),
      /**
       * Broadcast: a manual run this soon after the last one is refused without --force.
       * Default: half the schedule's period, 12 when it is off.
       */
      minIntervalHours: z.number().nonnegative().optional(),
    })
    .default({ enabled: true, cron: '0 7 * * 1,4', timezone: 'UTC', catchUp: true }),
  /** Bounce and complaint notifications from the relay (POST /webhooks/ses, /webhooks/postmark). */
  webhooks: z
    .strictObject({
      ses: z
        .strictObject({
          /** Only notifications from these SNS topics are believed. */
          topicArns: z
            .array(
              z
                .string()
                .regex(
                  /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/,
                  'must be an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:feuilleton-bounces',
                ),
            )
            .min(1),
        })
        .optional(),
      postmark: z
        .strictObject({
          /**
           * Sent by Postmark as the basic-auth password (any user name) of the webhook URL.
           * Env: FEUILLETON_POSTMARK_TOKEN.
           */
          token: z.string().min(16, 'must be at least 16 random characters'),
        })
        .optional(),
    })
    .default({}),
  /**
   * Readers' own calendars (README "Each reader's calendar"): the choices a new reader starts
   * with and the preferences form shows first, and how often the scheduler looks for readers
   * whose own delivery time has come.
   */
  readers: z
    .strictObject({
      /** schedule: one installment at each of the story's runs, until the reader chooses otherwise. */
      cadence: z.enum(['schedule', 'daily', 'weekdays', 'days', 'weekly']).default('schedule'),
      /** The days for cadence `days` and the day for `weekly` (its first). */
      days: z.array(z.enum(WEEKDAY_NAMES)).min(1, 'must name at least one day, such as [monday]').default(['monday']),
      time: z
        .string()
        .refine((v) => parseTimeOfDay(v) !== null, 'must be a time of day as HH:MM, such as "07:00"')
        .default('07:00'),
      /** Unset: schedule.timezone. The form preselects the zone the reader's browser reports. */
      timezone: z
        .string()
        .refine((v) => isTimeZone(v), 'is not a known time zone; use an IANA name such as Europe/Paris or UTC')
        .optional(),
      tickMinutes: z.number().int().min(1).max(60).default(5),
    })
    .default({ cadence: 'schedule', days: ['monday'], time: '07:00', tickMinutes: 5 }),
  dataDir: z.string().min(1).default('data'),
  templatesDir: z.string().min(1).optional(),
});

type Raw = z.infer<typeof schema>;

/** Settings are read, never written, once loaded: a changed setting is a new Config. */
type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

export type Config = DeepReadonly<LoadedConfig>;

interface LoadedConfig extends Omit<Raw, 'split' | 'production' | 'baseUrl'> {
  baseUrl: string;
  /** baseUrl was not set: it is the server's address, so `serve` rebuilds it from the port it listens on. */
  baseUrlFollowsServer: boolean;
  /** Going live (see the `production` setting): decided once here. */
  production: boolean;
  /** What decided `production`, for messages: the setting, NODE_ENV or the baseUrl. */
  productionReason: string;
  /** Absolute path of the config file, or undefined when running on built-in defaults. */
  file: string | undefined;
  /** Folder relative paths in the config are resolved against. */
  root: string;
  split: Raw['split'] & { targetWords: number };
  paths: { story: string; data: string; templates: string; outbox: string; db: string };
}

interface EnvOverride {
  name: string;
  /** The setting it replaces, as a path into the raw config. */
  setting: string[];
  /** Its value may be printed in an error (never for secrets and URLs with passwords). */
  shown: boolean;
  parse?: (value: string) => unknown;
}

const ENV_OVERRIDES: EnvOverride[] = [
  { name: 'FEUILLETON_SMTP_URL', setting: ['mail', 'smtpUrl'], shown: false },
  { name: 'FEUILLETON_SECRET', setting: ['secret'], shown: false },
  { name: 'FEUILLETON_BASE_URL', setting: ['baseUrl'], shown: true },
  { name: 'FEUILLETON_DATA_DIR', setting: ['dataDir'], shown: true },
  // Anything but digits stays a string, so the schema refuses it rather than NaN or a rounding.
  {
    name: 'FEUILLETON_PORT',
    setting: ['server', 'port'],
    shown: true,
    parse: (v) => (/^\d+$/.test(v) ? Number(v) : v),
  },
  { name: 'FEUILLETON_POSTMARK_TOKEN', setting: ['webhooks', 'postmark', 'token'], shown: false },
];

type Applied = EnvOverride & { value: string };

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Applied[] {
  const applied: Applied[] = [];
  for (const o of ENV_OVERRIDES) {
    const value = env[o.name];
    if (value === undefined || value === '') continue;
    let node: Record<string, unknown> | undefined = raw;
    for (const key of o.setting.slice(0, -1)) {
      const next: unknown = (node[key] ??= {});
      // A section the file wrote as something else than a mapping: the file's error is reported.
      node =
        typeof next === 'object' && next !== null && !Array.isArray(next)
          ? (next as Record<string, unknown>)
          : undefined;
      if (!node) break;
    }
    if (!node) continue;
    node[o.setting.at(-1)!] = o.parse ? o.parse(value) : value;
    applied.push({ ...o, value });
  }
  return applied;
}

/** The address links use when baseUrl is unset: a wildcard listen address is reached through loopback. */
export function serverUrl(host: string, port: number): string {
  const h = ['0.0.0.0', '::', ''].includes(host) ? '127.0.0.1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** 127.0.0.0/8, ::1 and localhost names: a site only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    h === '::ffff:127.0.0.1'
  );
}

/** The setting wins; else NODE_ENV; else a baseUrl other machines would use means the site is live. */
function production(
  setting: boolean | undefined,
  env: NodeJS.ProcessEnv,
  base: string,
): Pick<Config, 'production' | 'productionReason'> {
  if (setting !== undefined) return { production: setting, productionReason: `production: ${setting} is set` };
  if (env.NODE_ENV === 'production') return { production: true, productionReason: 'NODE_ENV=production' };
  if (!isLoopbackHost(new URL(base).hostname))
    return { production: true, productionReason: `baseUrl ${base} is not a loopback address` };
  return {
    production: false,
    productionReason: `baseUrl ${base} is a loopback address and NODE_ENV is not production`,
  };
}

/** Finds the config: an explicit path, FEUILLETON_CONFIG, or feuilleton.yaml in the working directory. */
export function locateConfig(
  explicit?: string,
  cwd = process.cwd(),
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const wanted = explicit ?? env.FEUILLETON_CONFIG;
  if (wanted) {
    const abs = path.resolve(cwd, wanted);
    if (!existsSync(abs))
      throw new ConfigError(
        `${abs}: config file not found; pass an existing file with --config or run "feuilleton init DIR"`,
      );
    return abs;
  }
  const local = path.join(cwd, CONFIG_FILE_NAME);
  return existsSync(local) ? local : undefined;
}

function readRaw(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read config (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => {
      const at = lineCounter.linePos(e.pos[0]);
      return `${file}:${at.line}:${at.col}: not valid YAML (${e.message.split('\n')[0]})`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  let value: unknown;
  try {
    value = doc.toJS() ?? {};
  } catch (err) {
    // yaml refuses to expand aliases past a limit (a "billion laughs" file would fill memory).
    throw new ConfigError(
      `${file}: too many YAML aliases (*name) to expand (${(err as Error).message}); ` +
        'write the settings out instead of repeating aliases',
    );
  }
  if (typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(`${file}: the top level must be a mapping of settings (key: value)`);
  return value as Record<string, unknown>;
}

function describeIssue(file: string, issue: z.core.$ZodIssue, fromEnv: Applied[]): string {
  const where = issue.path.map(String).join('.');
  // A value the environment set is the variable's fault: the file may not even mention it.
  const env = fromEnv.find((o) => o.setting.join('.') === where);
  if (env) {
    const value = env.shown ? `=${env.value}` : '';
    const problem =
      where === 'server.port'
        ? 'is not a port number: use a whole number from 1 to 65535 (0 picks a free one)'
        : issue.message;
    return (
      `${env.name}${value} (environment, sets ${where}) ${problem}; ` +
      "fix it, or unset it to use the config file's value"
    );
  }
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (where ? `${where}.${k}` : k)).join(', ');
    return `${file}: unknown setting ${keys}; check the spelling (see README, "Configuration")`;
  }
  return `${file}: ${where || '(top level)'} ${issue.message}`;
}

/**
 * `requireFile`: the CLI's rule. Without a config file a command would run on the demo story
 * and create a database wherever it was started, so it stops and says where it looked.
 * `forCheck`: `check` reports a missing baseUrl in production among its findings instead.
 */
export function loadConfig(
  opts: { configPath?: string; cwd?: string; env?: NodeJS.ProcessEnv; requireFile?: boolean; forCheck?: boolean } = {},
): Config {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const file = locateConfig(opts.configPath, cwd, env);
  if (!file && opts.requireFile) {
    throw new ConfigError(
      `no config file: ${path.join(cwd, CONFIG_FILE_NAME)} does not exist, ` +
        'FEUILLETON_CONFIG is not set and no --config was given; ' +
        'run this in your project\'s folder, pass --config FILE, or make a project with "feuilleton init DIR"',
    );
  }
  const raw: Record<string, unknown> = file ? readRaw(file) : {};
  const fromEnv = applyEnv(raw, env);
  const label = file ?? `${CONFIG_FILE_NAME} (built-in defaults)`;
  const result = schema.safeParse(raw);
  const problems = result.success ? [] : result.error.issues.map((issue) => describeIssue(label, issue, fromEnv));
  // A site going live but linking to 127.0.0.1 would send broken links to every reader and
  // feed, with nothing failing here to say so.
  const followsServer = raw.baseUrl === undefined;
  const goingLive = raw.production === true || (raw.production === undefined && env.NODE_ENV === 'production');
  if (followsServer && goingLive && !opts.forCheck) {
    problems.push(
      `${label}: baseUrl is missing; ` +
        "set it to the site's public address, such as https://serial.example.org (or set FEUILLETON_BASE_URL)",
    );
  }
  if (!result.success || problems.length) throw new ConfigError(problems.join('\n'));
  const c = {
    ...result.data,
    baseUrl: result.data.baseUrl ?? serverUrl(result.data.server.host, result.data.server.port),
  };
  const root = file ? path.dirname(file) : cwd;
  const resolve = (p: string) => path.resolve(root, p);
  const storyPath =
    file || existsSync(resolve(c.story.file)) ? resolve(c.story.file) : path.join(PACKAGE_ROOT, c.story.file);
  const data = resolve(c.dataDir);
  const targetWords = c.split.targetWords ?? Math.round(c.split.targetMinutes * c.split.wordsPerMinute);
  return {
    ...c,
    baseUrlFollowsServer: followsServer,
    ...production(c.production, env, c.baseUrl),
    file,
    root,
    split: { ...c.split, targetWords },
    paths: {
      story: storyPath,
      data,
      templates: c.templatesDir ? resolve(c.templatesDir) : path.join(PACKAGE_ROOT, 'templates'),
      outbox: path.join(data, 'outbox'),
      db: path.join(data, 'feuilleton.db'),
    },
  };
}
