// Bounce and complaint webhooks end to end: the real server on 127.0.0.1, the real SQLite
// file, SES notifications wrapped in SNS envelopes signed with a certificate this test makes
// (the server gets it through an injected fetcher, never the network), and Postmark payloads
// in their documented format (test/fixtures/webhooks/).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { App } from '../../src/app.ts';
import { startServing, type Serving } from '../../src/commands/serve.ts';
import { createLogger } from '../../src/log.ts';
import { makeProject, type Project } from '../helpers/project.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'webhooks');
const fixture = (name: string): Record<string, any> => JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8'));

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:feuilleton-feedback';
const CERT_URL = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem';
const POSTMARK_TOKEN = 'pm-webhook-7f3a9c2e41b86d05';

/** A self-signed certificate and its key, made with the openssl CLI (node:crypto cannot issue certificates). */
function makeCertificate(): { certPem: string; key: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'feuilleton-sns-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-sha256',
        '-days',
        '2',
        '-subj',
        '/CN=sns.amazonaws.com',
        '-keyout',
        'key.pem',
        '-out',
        'cert.pem',
      ],
      {
        cwd: dir,
        stdio: 'pipe',
      },
    );
    return {
      certPem: readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(path.join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Amazon's documented string to sign: these keys, in this order, "Key\nValue\n" each;
// Subject only when present.
const SIGNED_KEYS: Record<string, string[]> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

function signEnvelope(
  fields: Record<string, string>,
  key: KeyObject | string,
  version: '1' | '2' = '2',
  certUrl = CERT_URL,
): Record<string, string> {
  const text = SIGNED_KEYS[fields.Type!]!.filter((k) => fields[k] !== undefined)
    .map((k) => `${k}\n${fields[k]}\n`)
    .join('');
  const signature = sign(version === '1' ? 'sha1' : 'sha256', Buffer.from(text, 'utf8'), key).toString('base64');
  return { ...fields, SignatureVersion: version, Signature: signature, SigningCertURL: certUrl };
}

let snsSerial = 0;
const snsMessageId = (): string => `2b7c1f0e-5d4a-5e3b-9c8d-${String(++snsSerial).padStart(12, '0')}`;

function notification(
  event: unknown,
  opts: { topic?: string; messageId?: string; subject?: string } = {},
): Record<string, string> {
  const fields: Record<string, string> = {
    Type: 'Notification',
    MessageId: opts.messageId ?? snsMessageId(),
    TopicArn: opts.topic ?? TOPIC,
    Message: typeof event === 'string' ? event : JSON.stringify(event),
    Timestamp: '2025-03-04T09:12:46.123Z',
    UnsubscribeURL: `https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=${TOPIC}:c5d1e0a2-7b3f-4e9d-8a6c-1f2e3d4c5b6a`,
  };
  if (opts.subject) fields.Subject = opts.subject;
  return fields;
}

describe('bounce and complaint webhooks', () => {
  const cert = makeCertificate();
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const fetched: string[] = [];
  let project: Project;
  let app: App;
  let serving: Serving;

  /** Serves the test certificate and answers subscription confirmations; no network. */
  function fetchText(url: string): Promise<string> {
    fetched.push(url);
    if (url === CERT_URL) return Promise.resolve(cert.certPem);
    if (url.startsWith('https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription')) {
      return Promise.resolve(
        '<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>ok</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>',
      );
    }
    return Promise.reject(new Error(`test fetcher: nothing at ${url}`));
  }

  const post = (route: string, body: string, headers: Record<string, string>): Promise<Response> =>
    fetch(new URL(route, serving.url), { method: 'POST', body, headers });
  const postSns = (envelope: Record<string, string>): Promise<Response> =>
    post('/webhooks/ses', JSON.stringify(envelope), {
      'content-type': 'text/plain; charset=UTF-8',
      'x-amz-sns-message-type': envelope.Type!,
    });
  const basic = (user: string, password: string): string =>
    `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const postPostmark = (
    payload: unknown,
    authorization: string | null = basic('postmark', POSTMARK_TOKEN),
  ): Promise<Response> =>
    post('/webhooks/postmark', typeof payload === 'string' ? payload : JSON.stringify(payload), {
      'content-type': 'application/json',
      ...(authorization ? { authorization } : {}),
    });

  /** An active reader and, when given, a sent installment carrying that Message-ID. */
  function reader(email: string, messageId?: string): { subscriberId: number; deliveryId: number | null } {
    const sub = app.store.subscribers.create({ email, status: 'active' });
    if (!messageId) return { subscriberId: sub.id, deliveryId: null };
    const claim = app.store.deliveries.claim(sub.id, 1, null)!;
    app.store.deliveries.markSent(claim.id, messageId);
    return { subscriberId: sub.id, deliveryId: claim.id };
  }

  const subscriberRow = (id: number) =>
    app.store.db.prepare('SELECT status, status_reason, unsubscribed_at FROM subscribers WHERE id = ?').get(id) as {
      status: string;
      status_reason: string | null;
      unsubscribed_at: string | null;
    };
  const feedbackFor = (email: string) =>
    app.store.db
      .prepare(
        'SELECT provider, type, email, message_id, subscriber_id, delivery_id FROM feedback WHERE email = ? COLLATE NOCASE ORDER BY id',
      )
      .all(email) as Array<{
      provider: string;
      type: string;
      email: string;
      message_id: string | null;
      subscriber_id: number | null;
      delivery_id: number | null;
    }>;
  /** Everything a refused request must leave as it was. */
  const snapshot = () =>
    JSON.stringify([
      app.store.db.prepare('SELECT * FROM subscribers ORDER BY id').all(),
      app.store.db.prepare('SELECT * FROM feedback ORDER BY id').all(),
    ]);

  before(async () => {
    project = makeProject({
      settings: { webhooks: { ses: { topicArns: [TOPIC] }, postmark: { token: POSTMARK_TOKEN } } },
    });
    app = project.open();
    serving = await startServing(app, createLogger({ level: 'silent', pretty: false }), {
      host: '127.0.0.1',
      port: 0,
      fetchText,
    });
  });

  after(async () => {
    await serving?.stop();
    project?.cleanup();
  });

  it('SES permanent bounce: the reader becomes bounced and the event is recorded against the delivery', async () => {
    const { subscriberId, deliveryId } = reader('gone.reader@example.org', '<i1.Qm9vazE.7kq2xw@example.com>');
    const res = await postSns(signEnvelope(notification(fixture('ses-bounce-permanent.json')), cert.key));
    assert.equal(res.status, 200, await res.text());
    assert.deepEqual(subscriberRow(subscriberId), {
      status: 'bounced',
      status_reason: 'bounce',
      unsubscribed_at: null,
    });
    assert.deepEqual(feedbackFor('gone.reader@example.org'), [
      {
        provider: 'ses',
        type: 'bounce',
        email: 'gone.reader@example.org',
        message_id: '<i1.Qm9vazE.7kq2xw@example.com>',
        subscriber_id: subscriberId,
        delivery_id: deliveryId,
      },
    ]);
    assert.ok(fetched.includes(CERT_URL), 'the signing certificate came through the injected fetcher');
  });

  it('SES transient bounce (configuration-set event, Message-ID without brackets): recorded, status unchanged', async () => {
    const { subscriberId, deliveryId } = reader('full.reader@example.org', '<i1.RnVsbA.p3m9za@example.com>');
    const res = await postSns(signEnvelope(notification(fixture('ses-bounce-transient.json')), cert.key));
    assert.equal(res.status, 200);
    assert.deepEqual(subscriberRow(subscriberId), { status: 'active', status_reason: null, unsubscribed_at: null });
    assert.deepEqual(feedbackFor('full.reader@example.org'), [
      {
        provider: 'ses',
        type: 'soft-bounce',
        email: 'Full.Reader@Example.org',
        message_id: '<i1.RnVsbA.p3m9za@example.com>',
        subscriber_id: subscriberId,
        delivery_id: deliveryId,
      },
    ]);
  });

  it('SES complaint (SignatureVersion 1): the reader is unsubscribed with reason complaint', async () => {
    const { subscriberId, deliveryId } = reader('annoyed.reader@example.org', '<i1.QW5ub3k.x8d2lq@example.com>');
    const res = await postSns(
      signEnvelope(
        notification(fixture('ses-complaint.json'), { subject: 'Amazon SES Email Event Notification' }),
        cert.key,
        '1',
      ),
    );
    assert.equal(res.status, 200);
    const row = subscriberRow(subscriberId);
    assert.equal(row.status, 'unsubscribed');
    assert.equal(row.status_reason, 'complaint');
    assert.ok(row.unsubscribed_at && Math.abs(Date.now() - Date.parse(row.unsubscribed_at)) < 60_000);
    assert.deepEqual(feedbackFor('annoyed.reader@example.org'), [
      {
        provider: 'ses',
        type: 'complaint',
        email: 'annoyed.reader@example.org',
        message_id: '<i1.QW5ub3k.x8d2lq@example.com>',
        subscriber_id: subscriberId,
        delivery_id: deliveryId,
      },
    ]);
  });

  it('SES SubscriptionConfirmation: the SubscribeURL is fetched through the fetcher', async () => {
    const subscribeUrl = `https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${TOPIC}&Token=2336412f37fb687f5d51e6e2425c464de`;
    const envelope = signEnvelope(
      {
        Type: 'SubscriptionConfirmation',
        MessageId: snsMessageId(),
        Token: '2336412f37fb687f5d51e6e2425c464de',
        TopicArn: TOPIC,
        Message: `You have chosen to subscribe to the topic ${TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
        SubscribeURL: subscribeUrl,
        Timestamp: '2025-03-01T10:00:00.000Z',
      },
      cert.key,
    );
    // Signed with another key: refused, and the URL is not visited.
    const forged = signEnvelope({ ...envelope, SubscribeURL: `${subscribeUrl}0` }, otherKey);
    assert.equal((await postSns(forged)).status, 403);
    assert.ok(!fetched.includes(`${subscribeUrl}0`));

    const res = await postSns(envelope);
    assert.equal(res.status, 200, await res.text());
    assert.ok(fetched.includes(subscribeUrl), 'the subscription was confirmed by GET of SubscribeURL');
  });

  it('a forged signature (one byte of Message changed, or another key) is refused with 403 and changes nothing', async () => {
    const { subscriberId } = reader('forged.target@example.org', '<i1.Rm9yZ2Vk.f0r63d@example.com>');
    const event = fixture('ses-bounce-permanent.json');
    event.bounce.bouncedRecipients[0].emailAddress = 'forged.target@example.org';
    event.mail.commonHeaders.messageId = '<i1.Rm9yZ2Vk.f0r63d@example.com>';
    const signed = signEnvelope(notification(event), cert.key);
    const before = snapshot();

    const tampered = { ...signed, Message: signed.Message!.replace('"Permanent"', '"Permanenu"') };
    assert.equal((await postSns(tampered)).status, 403);
    assert.equal((await postSns(signEnvelope(notification(event), otherKey))).status, 403);
    assert.equal((await postSns(signEnvelope(notification(event), otherKey, '1'))).status, 403);
    assert.equal((await postSns({ ...signed, SignatureVersion: '3' })).status, 403);

    assert.equal(snapshot(), before);
    assert.equal(subscriberRow(subscriberId).status, 'active');
  });

  it('a certificate URL that is not an SNS https .pem is refused with 403 without fetching it', async () => {
    const { subscriberId } = reader('cert.target@example.org');
    const event = fixture('ses-complaint.json');
    event.complaint.complainedRecipients[0].emailAddress = 'cert.target@example.org';
    const before = snapshot();
    const fetchedBefore = fetched.length;
    for (const url of [
      'https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem',
      'https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem',
      'http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem',
      'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.txt',
      'https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-1.pem',
      'not a url',
    ]) {
      const res = await postSns(signEnvelope(notification(event), cert.key, '2', url));
      assert.equal(res.status, 403, url);
    }
    assert.equal(fetched.length, fetchedBefore, 'the fetcher was never called');
    assert.equal(snapshot(), before);
    assert.equal(subscriberRow(subscriberId).status, 'active');
  });

  it('a certificate that cannot be fetched is answered 502 (SNS retries) and changes nothing', async () => {
    const { subscriberId } = reader('unfetched.target@example.org');
    const event = fixture('ses-complaint.json');
    event.complaint.complainedRecipients[0].emailAddress = 'unfetched.target@example.org';
    const before = snapshot();
    const missing = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem';
    assert.equal((await postSns(signEnvelope(notification(event), cert.key, '2', missing))).status, 502);
    assert.ok(fetched.includes(missing));
    assert.equal(snapshot(), before);
    assert.equal(subscriberRow(subscriberId).status, 'active');
  });

  it('a notification of about 256 KB is accepted on this route; a larger body gets 413', async () => {
    const { subscriberId } = reader('big.reader@example.org');
    const event = fixture('ses-bounce-permanent.json');
    event.bounce.bouncedRecipients[0].emailAddress = 'big.reader@example.org';
    event.mail.commonHeaders.messageId = '<i1.Qmln.b1gb16@example.com>';
    event.mail.headers = Array.from({ length: 2400 }, (_, i) => ({ name: `X-Padding-${i}`, value: 'x'.repeat(80) }));
    const envelope = signEnvelope(notification(event), cert.key);
    assert.ok(JSON.stringify(envelope).length > 200_000);
    const res = await postSns(envelope);
    assert.equal(res.status, 200, await res.text());
    assert.equal(subscriberRow(subscriberId).status, 'bounced');
    const huge = await post('/webhooks/ses', JSON.stringify({ ...envelope, Message: 'x'.repeat(1024 * 1024) }), {
      'content-type': 'text/plain; charset=UTF-8',
    });
    assert.equal(huge.status, 413);
  });

  it('a notification from a topic not in webhooks.ses.topicArns is refused with 403', async () => {
    const { subscriberId } = reader('topic.target@example.org');
    const event = fixture('ses-complaint.json');
    event.complaint.complainedRecipients[0].emailAddress = 'topic.target@example.org';
    const before = snapshot();
    const res = await postSns(
      signEnvelope(notification(event, { topic: 'arn:aws:sns:eu-west-1:123456789012:someone-else' }), cert.key),
    );
    assert.equal(res.status, 403);
    assert.equal(snapshot(), before);
    assert.equal(subscriberRow(subscriberId).status, 'active');
  });

  it('the same SNS notification delivered twice is counted once', async () => {
    const { subscriberId } = reader('twice.reader@example.org');
    const event = fixture('ses-bounce-transient.json');
    event.bounce.bouncedRecipients[0].emailAddress = 'twice.reader@example.org';
    event.mail.commonHeaders.messageId = '<i1.VHdpY2U.tw1c3r@example.com>';
    const envelope = signEnvelope(notification(event), cert.key);
    assert.equal((await postSns(envelope)).status, 200);
    assert.equal((await postSns(envelope)).status, 200, 'a retry is answered 200 so SNS stops retrying');
    const rows = feedbackFor('twice.reader@example.org');
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.subscriber_id, subscriberId);
    // The same event under a new SNS MessageId is a new report.
    assert.equal((await postSns(signEnvelope(notification(event), cert.key))).status, 200);
    assert.equal(feedbackFor('twice.reader@example.org').length, 2);
  });

  it('an event for an unknown address is recorded without a reader and answered 200', async () => {
    const event = fixture('ses-bounce-permanent.json');
    event.bounce.bouncedRecipients[0].emailAddress = 'stranger@example.org';
    event.mail.commonHeaders.messageId = '<nobody.knows@example.com>';
    event.mail.headers = [];
    const res = await postSns(signEnvelope(notification(event), cert.key));
    assert.equal(res.status, 200);
    assert.deepEqual(feedbackFor('stranger@example.org'), [
      {
        provider: 'ses',
        type: 'bounce',
        email: 'stranger@example.org',
        message_id: '<nobody.knows@example.com>',
        subscriber_id: null,
        delivery_id: null,
      },
    ]);
  });

  it("Delivery events and SES's own setup message are answered 200 and ignored; malformed JSON gets 400", async () => {
    const { subscriberId } = reader('happy.reader@example.org', '<i1.SGFwcHk.a1b2c3@example.com>');
    const before = snapshot();
    assert.equal((await postSns(signEnvelope(notification(fixture('ses-delivery.json')), cert.key))).status, 200);
    assert.equal(
      (
        await postSns(
          signEnvelope(notification('Successfully validated SNS topic for Amazon SES event publishing.'), cert.key),
        )
      ).status,
      200,
    );
    assert.equal(
      (await post('/webhooks/ses', '{"Type": "Notification", ', { 'content-type': 'text/plain; charset=UTF-8' }))
        .status,
      400,
    );
    assert.equal((await postPostmark('{"RecordType": "Bounce", ')).status, 400);
    assert.equal(snapshot(), before);
    assert.equal(subscriberRow(subscriberId).status, 'active');
  });

  it('Postmark hard bounce: the reader (matched by address, any case) becomes bounced', async () => {
    const { subscriberId } = reader('gone.pm@example.org');
    const payload = { ...fixture('postmark-hard-bounce.json'), Email: 'Gone.PM@example.org' };
    const res = await postPostmark(payload);
    assert.equal(res.status, 200, await res.text());
    assert.deepEqual(subscriberRow(subscriberId), {
      status: 'bounced',
      status_reason: 'bounce',
      unsubscribed_at: null,
    });
    assert.deepEqual(feedbackFor('gone.pm@example.org'), [
      {
        provider: 'postmark',
        type: 'bounce',
        email: 'Gone.PM@example.org',
        message_id: null,
        subscriber_id: subscriberId,
        delivery_id: null,
      },
    ]);
  });

  it('Postmark soft bounce: recorded, status unchanged; a retried payload counts once, a different 64-bit ID does not', async () => {
    const { subscriberId } = reader('full.pm@example.org');
    const raw = readFileSync(path.join(FIXTURES, 'postmark-soft-bounce.json'), 'utf8').replace(
      'full.reader@example.org',
      'full.pm@example.org',
    );
    assert.equal((await postPostmark(raw)).status, 200);
    assert.equal((await postPostmark(raw)).status, 200);
    assert.deepEqual(subscriberRow(subscriberId), { status: 'active', status_reason: null, unsubscribed_at: null });
    assert.equal(feedbackFor('full.pm@example.org').length, 1);
    assert.equal(feedbackFor('full.pm@example.org')[0]!.type, 'soft-bounce');
    // 4323372036854775811 and …815 are one number to JSON.parse; they are two events to Postmark.
    assert.equal((await postPostmark(raw.replace('4323372036854775811', '4323372036854775815'))).status, 200);
    assert.equal(feedbackFor('full.pm@example.org').length, 2);
  });

  it('Postmark spam complaint: the reader is unsubscribed with reason complaint', async () => {
    const { subscriberId } = reader('annoyed.pm@example.org');
    const res = await postPostmark({ ...fixture('postmark-spam-complaint.json'), Email: 'annoyed.pm@example.org' });
    assert.equal(res.status, 200);
    const row = subscriberRow(subscriberId);
    assert.equal(row.status, 'unsubscribed');
    assert.equal(row.status_reason, 'complaint');
    assert.ok(row.unsubscribed_at);
    assert.equal(feedbackFor('annoyed.pm@example.org')[0]!.type, 'complaint');
  });

  it('Postmark with a wrong or missing token gets 401 with WWW-Authenticate and changes nothing', async () => {
    const { subscriberId } = reader('victim.pm@example.org');
    const payload = { ...fixture('postmark-spam-complaint.json'), Email: 'victim.pm@example.org' };
    const before = snapshot();
    for (const auth of [
      basic('postmark', 'wrong-token-0000000'),
      basic('postmark', `${POSTMARK_TOKEN}x`),
      `Bearer ${POSTMARK_TOKEN}`,
      'Basic !!!',
      null,
    ]) {
      const res = await postPostmark(payload, auth);
      assert.equal(res.status, 401, String(auth));
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    }
    assert.equal(snapshot(), before);
    assert.equal(subscriberRow(subscriberId).status, 'active');
    // Any user name will do.
    assert.equal((await postPostmark(payload, basic('', POSTMARK_TOKEN))).status, 200);
    assert.equal(subscriberRow(subscriberId).status, 'unsubscribed');
  });

  it('without webhooks in the config both routes answer 404', async () => {
    const bare = makeProject();
    const bareApp = bare.open();
    const site = await startServing(bareApp, createLogger({ level: 'silent', pretty: false }), {
      host: '127.0.0.1',
      port: 0,
      fetchText,
    });
    try {
      for (const route of ['/webhooks/ses', '/webhooks/postmark']) {
        const res = await fetch(new URL(route, site.url), {
          method: 'POST',
          body: JSON.stringify(fixture('postmark-hard-bounce.json')),
          headers: { 'content-type': 'application/json', authorization: basic('postmark', POSTMARK_TOKEN) },
        });
        assert.equal(res.status, 404, route);
      }
    } finally {
      await site.stop();
      bare.cleanup();
    }
  });
});
