// Bounces and spam complaints reported by the relay after it accepted a message. What each
// provider's report means for a reader is decided here:
//   hard bounce → `bounced` (not mailed again), soft bounce → recorded only,
//   complaint → `unsubscribed` with reason 'complaint'.
// SES: bounceType Permanent is hard; Transient and Undetermined are soft.
// Postmark: HardBounce, BadEmailAddress and ManuallyDeactivated are hard; SpamComplaint is a
// complaint; the types below that say nothing about the reader's mailbox are ignored; every
// other type (SoftBounce, Transient, DnsError, SpamNotification, Blocked, DMARCPolicy, …, and
// types added later) is soft, so a relay-side problem can never bounce a whole list.
import type { FeedbackStore, FeedbackType } from '../store/feedback.ts';

export interface FeedbackEvent {
  provider: 'ses' | 'postmark';
  /** The provider's id for this report (SNS MessageId, Postmark ID). */
  eventId: string;
  type: FeedbackType;
  recipients: Array<{ email: string; detail?: Record<string, unknown> }>;
  /** Our Message-ID as the relay reported it (brackets optional), when it did. */
  messageId: string | null;
  detail: Record<string, unknown>;
}

export type Interpreted = { event: FeedbackEvent } | { ignored: string };

/** Thrown for a payload that is not the JSON its provider documents. */
export class MalformedReport extends Error {
  override name = 'MalformedReport';
}

export interface FeedbackLogger {
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

const POSTMARK_HARD = new Set(['HardBounce', 'BadEmailAddress', 'ManuallyDeactivated']);
const POSTMARK_IGNORED = new Set([
  'Unsubscribe',
  'Subscribe',
  'AutoResponder',
  'AddressChange',
  'OpenRelayTest',
  'ChallengeVerification',
  'InboundError',
  'TemplateRenderingFailed',
]);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
// Diagnostics are kept for the operator, not whole bounce dumps.
const clip = (v: unknown): string | undefined => text(v)?.slice(0, 500);

/** `<id@host>` as stored in deliveries.message_id; null for anything that is not a Message-ID (a relay's own UUID). */
export function normalizeMessageId(raw: unknown): string | null {
  const core = text(raw)?.replace(/^<|>$/g, '');
  return core && core.length <= 996 && /^[^\s<>@]+@[^\s<>@]+$/.test(core) ? `<${core}>` : null;
}

/** An SES event (the SNS notification's Message), in the identity-notification or configuration-set format. */
export function interpretSes(message: string, snsMessageId: string): Interpreted {
  let ses: unknown;
  try {
    ses = JSON.parse(message);
  } catch {
    // SES sends a plain sentence when an event destination is set up.
    return { ignored: 'not an SES event' };
  }
  if (!isObject(ses)) return { ignored: 'not an SES event' };
  const kind = text(ses.notificationType) ?? text(ses.eventType);
  const mail = isObject(ses.mail) ? ses.mail : {};
  const headers = Array.isArray(mail.headers) ? mail.headers.filter(isObject) : [];
  const messageId =
    text(isObject(mail.commonHeaders) ? mail.commonHeaders.messageId : undefined) ??
    text(headers.find((h) => text(h.name)?.toLowerCase() === 'message-id')?.value) ??
    null;
  const recipientsOf = (list: unknown, detail: (r: Json) => Json) =>
    (Array.isArray(list) ? list.filter(isObject) : []).flatMap((r) => {
      const email = text(r.emailAddress);
      return email ? [{ email, detail: detail(r) }] : [];
    });

  let type: FeedbackType;
  let recipients: FeedbackEvent['recipients'];
  let detail: Json;
  if (kind === 'Bounce' && isObject(ses.bounce)) {
    const b = ses.bounce;
    type = b.bounceType === 'Permanent' ? 'bounce' : 'soft-bounce';
    recipients = recipientsOf(b.bouncedRecipients, (r) => ({
      status: clip(r.status),
      diagnosticCode: clip(r.diagnosticCode),
    }));
    detail = { bounceType: clip(b.bounceType), bounceSubType: clip(b.bounceSubType), feedbackId: clip(b.feedbackId) };
  } else if (kind === 'Complaint' && isObject(ses.complaint)) {
    const c = ses.complaint;
    type = 'complaint';
    recipients = recipientsOf(c.complainedRecipients, () => ({}));
    detail = {
      complaintFeedbackType: clip(c.complaintFeedbackType),
      complaintSubType: clip(c.complaintSubType),
      feedbackId: clip(c.feedbackId),
    };
  } else {
    return { ignored: `SES ${kind ?? 'event of no type'}` };
  }
  if (recipients.length === 0) return { ignored: `SES ${kind} without recipients` };
  return { event: { provider: 'ses', eventId: snsMessageId, type, recipients, messageId, detail } };
}

/** A Postmark webhook body (RecordType Bounce or SpamComplaint). */
export function interpretPostmark(body: string): Interpreted {
  let p: unknown;
  try {
    // Postmark's IDs are 64-bit: JSON.parse would round those past 2^53 and merge distinct reports.
    p = JSON.parse(body.replace(/("ID"\s*:\s*)(\d{16,})/g, '$1"$2"'));
  } catch {
    throw new MalformedReport('the body is not JSON');
  }
  if (!isObject(p)) throw new MalformedReport('the body is not a JSON object');
  const record = text(p.RecordType);
  const bounceType = text(p.Type);
  let type: FeedbackType;
  if (record === 'SpamComplaint') type = 'complaint';
  else if (record !== 'Bounce') return { ignored: `Postmark ${record ?? 'record of no type'}` };
  else if (POSTMARK_IGNORED.has(bounceType ?? '')) return { ignored: `Postmark bounce of type ${bounceType}` };
  else
    type =
      bounceType === 'SpamComplaint' ? 'complaint' : POSTMARK_HARD.has(bounceType ?? '') ? 'bounce' : 'soft-bounce';

  const email = text(p.Email);
  const id = typeof p.ID === 'number' ? String(p.ID) : text(p.ID);
  if (!email || !id) throw new MalformedReport(`a Postmark ${record} needs Email and ID`);
  return {
    event: {
      provider: 'postmark',
      eventId: id,
      type,
      recipients: [{ email }],
      messageId: text(p.MessageID) ?? null,
      detail: {
        type: bounceType,
        postmarkMessageId: clip(p.MessageID),
        inactive: p.Inactive === true,
        description: clip(p.Description),
        details: clip(p.Details),
      },
    },
  };
}

export type FeedbackEffect = 'bounced' | 'unsubscribed' | 'recorded' | 'duplicate';

/** Applies reports to readers: one transaction per report, each effect logged by subscriber id (never the address). */
export class Feedback {
  constructor(private readonly deps: { store: FeedbackStore; log: FeedbackLogger }) {}

  apply(event: FeedbackEvent): FeedbackEffect[] {
    const { store, log } = this.deps;
    const messageId = normalizeMessageId(event.messageId);
    const outcomes = store.atomically(() => {
      // We send one message per reader, so a matching Message-ID names the reader; a report
      // listing several recipients is matched by address only.
      const delivery = messageId && event.recipients.length === 1 ? store.deliveryByMessageId(messageId) : undefined;
      return event.recipients.map(({ email, detail }) => {
        const subscriberId = delivery?.subscriberId ?? store.subscriberIdByEmail(email) ?? null;
        const deliveryId = delivery?.id ?? null;
        const fresh = store.insert({
          provider: event.provider,
          eventId: event.eventId,
          type: event.type,
          email,
          messageId,
          subscriberId,
          deliveryId,
          detail: JSON.stringify({ ...event.detail, ...detail }),
        });
        const effect: FeedbackEffect = !fresh
          ? 'duplicate'
          : subscriberId !== null && event.type === 'bounce' && store.markBounced(subscriberId)
            ? 'bounced'
            : subscriberId !== null && event.type === 'complaint' && store.markComplained(subscriberId)
              ? 'unsubscribed'
              : 'recorded';
        return { subscriberId, deliveryId, effect };
      });
    });
    for (const { subscriberId, deliveryId, effect } of outcomes) {
      const fields = {
        provider: event.provider,
        type: event.type,
        subscriber: subscriberId,
        delivery: deliveryId,
        event: event.eventId,
      };
      if (effect === 'duplicate') log.debug(fields, 'relay report already recorded (a retry); ignored');
      else if (effect === 'bounced') log.info(fields, 'hard bounce reported by the relay: reader marked bounced');
      else if (effect === 'unsubscribed')
        log.info(fields, 'spam complaint reported by the relay: reader unsubscribed (reason: complaint)');
      else
        log.info(
          fields,
          subscriberId === null
            ? 'relay report for an address that is not a subscriber: recorded'
            : `${event.type} reported by the relay: recorded`,
        );
    }
    return outcomes.map((o) => o.effect);
  }
}
