// Subscription emails (confirm, welcome): rendered once per template, filled per reader,
// sent straight through the transport. They are not installments, so they are not in the
// deliveries ledger; each gets its own Message-ID.
import { randomBytes } from 'node:crypto';
import type { App } from '../app.ts';
import type { Links } from '../links.ts';
import type { EmailRenderer, PreparedEmail } from '../render/email.ts';
import type { Subscriber } from '../store/subscribers.ts';
import type { Notices } from '../subscribers/service.ts';
import { listMail, messageId } from './headers.ts';
import type { MailTransport } from './transport.ts';

export function createNotices(deps: { app: App; renderer: EmailRenderer; transport: MailTransport; links: Links }): Notices {
  const { app, renderer, transport, links } = deps;

  const send = async (kind: string, prepared: PreparedEmail, sub: Subscriber, values: Record<string, string>) => {
    const unsubscribeUrl = links.unsubscribe(sub);
    const filled = prepared.fill({ unsubscribeUrl, feedUrl: links.privateFeed(sub), ...values });
    await transport.send(listMail(app, filled, sub.email, unsubscribeUrl, messageId(app.config, [kind, sub.id, randomBytes(6).toString('hex')])));
  };

  return {
    confirm: async (sub, confirmUrl) => send('confirm', await renderer.confirm(), sub, { confirmUrl }),
    welcome: async (sub) => send('welcome', await renderer.welcome(), sub, {}),
  };
}
