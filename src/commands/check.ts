// `feuilleton check`: every setting that is unsafe for going live, each as one line with
// its fix. The same findings are logged at `serve` and `send` start in production and
// shown by `status`; the ones that would lose or mis-sign mail also stop the transport
// from being built (deliver/transport.ts), so they are never only a warning.
import { openApp } from '../app.ts';
import { isLoopbackHost, type Config } from '../config.ts';
import {
  dkimTxtRecord,
  inspectDkimKey,
  KEYGEN_COMMAND,
  RECOMMENDED_BITS,
  type DkimInspection,
} from '../deliver/dkim.ts';
import { outboxRefusal } from '../deliver/transport.ts';
import { UserError } from '../errors.ts';
import { installmentEmailSizes, sizeWarnings } from '../render/size.ts';

export interface Finding {
  level: 'error' | 'warning';
  /** One line: the setting, what is wrong, and the fix. */
  text: string;
}

// What the sample feuilleton.yaml ships with: fine for the local tour, wrong for readers.
const SAMPLE_SENDER_NAME = "The Lamplighter's Ledger";
const SAMPLE_POSTAL_ADDRESS = 'Feuilleton demo · 1 Ropewalk Stair · Skelby Haven';

/** Domains no relay will send from and no receiver will trust (RFC 2606, RFC 6761). */
function unusableDomain(domain: string): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  return (
    isLoopbackHost(d) ||
    !d.includes('.') ||
    /(^|\.)example\.(com|net|org)$/.test(d) ||
    /\.(example|invalid|test|local|localdomain)$/.test(d)
  );
}

function senderFindings(from: string): Finding[] {
  const m = /^\s*(.*?)\s*<([^>]*)>\s*$/.exec(from);
  const [name, address] = m ? [m[1]!.replace(/^"|"$/g, ''), m[2]!] : ['', from.trim()];
  const domain = address.slice(address.lastIndexOf('@') + 1);
  const found: Finding[] = [];
  if (unusableDomain(domain)) {
    found.push({
      level: 'error',
      text:
        `mail.from "${from}" sends from ${domain}: relays refuse it and receivers treat it as spam; ` +
        'use an address on your own domain, the one your relay verified',
    });
  }
  if (name === SAMPLE_SENDER_NAME) {
    found.push({
      level: 'warning',
      text: `mail.from still has the sample's name "${SAMPLE_SENDER_NAME}"; put your story's title or your own name`,
    });
  }
  return found;
}

function dkimFindings(config: Config, dkim: DkimInspection): Finding[] {
  if (dkim.problem) return [{ level: 'error', text: dkim.problem }];
  if (dkim.key && dkim.key.bits < RECOMMENDED_BITS) {
    return [
      {
        level: 'warning',
        text:
          `mail.dkim.privateKeyFile ${dkim.key.file} is a ${dkim.key.bits}-bit RSA key: it works, ` +
          `but ${RECOMMENDED_BITS} bits is the recommended minimum; ` +
          `make one with: ${KEYGEN_COMMAND} (and publish its new TXT record)`,
      },
    ];
  }
  if (!dkim.key && !config.mail.relaySignsDkim) {
    return [
      {
        level: 'error',
        text:
          'no DKIM signature: mail.dkim is not set and mail.relaySignsDkim is false, ' +
          'and Gmail, Yahoo and others reject or bin unsigned bulk mail; ' +
          'configure mail.dkim, or set mail.relaySignsDkim: true if your relay signs (SES Easy DKIM and Postmark do)',
      },
    ];
  }
  return [];
}

function mailServerFindings(config: Config): Finding[] {
  const { mail, server, webhooks } = config;
  if (mail.smtpUrl) {
    if (webhooks.ses || webhooks.postmark) return [];
    return [
      {
        level: 'warning',
        text:
          'no bounce or complaint webhook (webhooks.ses or webhooks.postmark): ' +
          'bounces and spam complaints your relay reports after sending go unheard, ' +
          'and mailing those readers again costs your sending reputation; ' +
          'wire /webhooks/ses or /webhooks/postmark (see README, "Going live")',
      },
    ];
  }
  const found: Finding[] = [];
  if (mail.outboxInProduction) {
    found.push({
      level: 'warning',
      text:
        'mail.outboxInProduction is true: mail goes to the local outbox and reaches no reader, by your choice; ' +
        'set FEUILLETON_SMTP_URL or mail.smtpUrl to send for real',
    });
  } else {
    found.push({
      level: 'error',
      text:
        outboxRefusal(config) ??
        'no mail server: mail goes to the local outbox and reaches no reader; ' +
          'set FEUILLETON_SMTP_URL or mail.smtpUrl to your relay',
    });
  }
  if (server.outboxPage === 'public') {
    found.push({
      level: 'error',
      text:
        "server.outboxPage is public: anyone can read every reader's mail at /outbox, " +
        'with their confirm, unsubscribe and feed links; set it to loopback (or off)',
    });
  }
  return found;
}

/**
 * Everything unsafe for going live in this config. Pure apart from the DKIM key, which is
 * read and test-signed unless its inspection is passed in.
 */
export function checkConfig(config: Config, dkim: DkimInspection = inspectDkimKey(config)): Finding[] {
  const found: Finding[] = [];
  const base = new URL(config.baseUrl);
  if (isLoopbackHost(base.hostname)) {
    found.push({
      level: 'error',
      text:
        `baseUrl ${config.baseUrl} is a loopback address: ` +
        "links in emails and feeds would point at each reader's own computer; " +
        "set baseUrl (or FEUILLETON_BASE_URL) to the site's public https:// address",
    });
  } else if (base.protocol === 'http:') {
    found.push({
      level: 'error',
      text:
        `baseUrl ${config.baseUrl} is http: ` +
        'the subscribe form and every confirm and unsubscribe link would travel unencrypted; ' +
        'serve the site over TLS (Caddy, nginx) and set an https:// baseUrl',
    });
  }
  found.push(...mailServerFindings(config), ...senderFindings(config.mail.from));
  const postal = config.mail.postalAddress.trim();
  if (!postal || postal === SAMPLE_POSTAL_ADDRESS) {
    found.push({
      level: 'error',
      text:
        `mail.postalAddress is ${postal ? `still the sample's ("${postal}")` : 'empty'}: ` +
        'anti-spam law (CAN-SPAM and others) wants a real postal address in bulk mail; set yours (a PO box will do)',
    });
  }
  found.push(...dkimFindings(config, dkim));
  if (config.production && isLoopbackHost(config.server.host) && config.server.trustProxy === false) {
    found.push({
      level: 'warning',
      text:
        `server.trustProxy is false while the server listens on ${config.server.host} behind a proxy: ` +
        "rate limits and consent records see the proxy's address for every reader; " +
        "set server.trustProxy to the proxy's address, such as 127.0.0.1",
    });
  }
  return found;
}

export interface CheckResult {
  production: boolean;
  productionReason: string;
  config: string | null;
  errors: string[];
  warnings: string[];
  /** The DNS record receivers look up to verify signatures, when mail.dkim has a usable key. */
  dkimRecord: string | null;
}

/**
 * What readers would meet in the story's emails: each installment Gmail would clip. A story
 * that cannot be read is an error.
 */
export async function storyFindings(config: Config): Promise<Finding[]> {
  let app;
  try {
    app = openApp(config);
  } catch (err) {
    if (err instanceof UserError) return [{ level: 'error', text: err.message }];
    throw err;
  }
  try {
    return sizeWarnings(await installmentEmailSizes(app)).map((text) => ({ level: 'warning', text }));
  } finally {
    app.store.close();
  }
}

export function check(config: Config, more: Finding[] = []): CheckResult {
  const dkim = inspectDkimKey(config);
  const findings = [...checkConfig(config, dkim), ...more];
  return {
    production: config.production,
    productionReason: config.productionReason,
    config: config.file ?? null,
    errors: findings.filter((f) => f.level === 'error').map((f) => f.text),
    warnings: findings.filter((f) => f.level === 'warning').map((f) => f.text),
    dkimRecord: dkim.key ? dkimTxtRecord(dkim.key) : null,
  };
}

/** Errors in production make `check` fail; elsewhere they are what going live will need. */
export const checkFailed = (r: CheckResult): boolean => r.production && r.errors.length > 0;

export function checkReport(r: CheckResult): string {
  const lines = [
    `Production: ${r.production ? 'on' : 'off'} (${r.productionReason})`,
    `Config:     ${r.config ?? 'built-in defaults'}`,
  ];
  const group = (title: string, items: string[]) => {
    if (items.length) lines.push('', `${title} (${items.length}):`, ...items.map((t) => `  ${t}`));
  };
  group('Errors', r.errors);
  group('Warnings', r.warnings);
  if (r.dkimRecord)
    lines.push('', 'DKIM: publish this DNS record (receivers verify signatures with it):', `  ${r.dkimRecord}`);
  lines.push(
    '',
    !r.errors.length && !r.warnings.length
      ? 'No problems found.'
      : r.production
        ? r.errors.length
          ? 'Fix the errors before mailing readers.'
          : 'No errors; read the warnings.'
        : 'Not in production, so nothing here stops serve or send; fix the errors before going live.',
  );
  return lines.join('\n');
}

/** What `serve` and `send` log at start: every finding in production, nothing on the local tour. */
export const startWarnings = (config: Config): string[] =>
  config.production ? checkConfig(config).map((f) => f.text) : [];
