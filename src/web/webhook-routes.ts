// Relay feedback: POST /webhooks/ses (Amazon SNS, signature verified) and
// POST /webhooks/postmark (basic auth, the token as password). Each route exists only when
// configured. A refusal (400, 401, 403) changes nothing; an accepted report is answered 200
// even when it was already recorded, so the relay stops retrying.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';
import {
  interpretPostmark,
  interpretSes,
  MalformedReport,
  type Feedback,
  type Interpreted,
} from '../subscribers/feedback.ts';
import { fetchText as fetchOverHttps, isSnsUrl, parseEnvelope, SnsVerifier, type FetchText } from './sns.ts';

// SNS messages are at most 256 KB; JSON escaping in the envelope adds to that.
const BODY_LIMIT = 384 * 1024;

const answer = (reply: FastifyReply, status: number, text: string): FastifyReply =>
  reply.code(status).type('text/plain; charset=utf-8').send(`${text}\n`);

export function webhookRoutes(deps: { webhooks: Config['webhooks']; feedback: Feedback; fetchText?: FetchText }) {
  const { webhooks, feedback } = deps;
  const fetchText = deps.fetchText ?? fetchOverHttps;

  function apply(req: FastifyRequest, reply: FastifyReply, report: Interpreted): FastifyReply {
    if ('ignored' in report) {
      req.log.info({ ignored: report.ignored }, 'relay report ignored: it does not concern a reader');
      return answer(reply, 200, 'ignored');
    }
    feedback.apply(report.event);
    return answer(reply, 200, 'ok');
  }

  function sesRoute(scope: FastifyInstance, topicArns: readonly string[]): void {
    const verifier = new SnsVerifier(fetchText);
    scope.post('/webhooks/ses', { bodyLimit: BODY_LIMIT }, async (req, reply) => {
      const env = parseEnvelope(req.body);
      if (typeof env === 'string') return answer(reply, 400, env);
      if (!topicArns.includes(env.TopicArn)) {
        req.log.warn({ topicArn: env.TopicArn }, 'SNS message from a topic not in webhooks.ses.topicArns refused');
        return answer(reply, 403, 'unknown topic');
      }
      let genuine: boolean;
      try {
        genuine = await verifier.verify(env);
      } catch (err) {
        req.log.warn(
          { err, certUrl: env.SigningCertURL },
          'SNS signing certificate could not be fetched; SNS will retry',
        );
        return answer(reply, 502, 'signing certificate unavailable');
      }
      if (!genuine) {
        req.log.warn(
          { topicArn: env.TopicArn, certUrl: env.SigningCertURL },
          'SNS message with a bad signature or certificate URL refused',
        );
        return answer(reply, 403, 'bad signature');
      }
      if (env.Type === 'UnsubscribeConfirmation') {
        req.log.info({ topicArn: env.TopicArn }, 'SNS: this endpoint was unsubscribed from the topic');
        return answer(reply, 200, 'ok');
      }
      if (env.Type === 'SubscriptionConfirmation') {
        const url = env.SubscribeURL!;
        if (!isSnsUrl(url)) return answer(reply, 403, 'SubscribeURL is not an SNS https URL');
        try {
          await fetchText(url);
        } catch (err) {
          req.log.warn(
            { err, topicArn: env.TopicArn, subscribeUrl: url },
            'SNS subscription could not be confirmed; open the SubscribeURL to confirm it by hand',
          );
          return answer(reply, 502, 'could not confirm the subscription');
        }
        req.log.info({ topicArn: env.TopicArn, subscribeUrl: url }, 'SNS subscription confirmed');
        return answer(reply, 200, 'subscription confirmed');
      }
      return apply(req, reply, interpretSes(env.Message, env.MessageId));
    });
  }

  function postmarkRoute(scope: FastifyInstance, token: string): void {
    // Hashes of equal length make the comparison constant-time whatever was sent.
    const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
    const expected = digest(token);
    const authorised = (header: string | undefined): boolean => {
      const m = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header?.trim() ?? '');
      const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      return colon >= 0 && timingSafeEqual(digest(decoded.slice(colon + 1)), expected);
    };
    scope.post('/webhooks/postmark', { bodyLimit: BODY_LIMIT }, async (req, reply) => {
      if (!authorised(req.headers.authorization)) {
        req.log.warn('Postmark webhook without the right token refused');
        return answer(
          reply.header('www-authenticate', 'Basic realm="feuilleton webhooks", charset="UTF-8"'),
          401,
          'unauthorised',
        );
      }
      if (typeof req.body !== 'string') return answer(reply, 400, 'expected a JSON body');
      try {
        return apply(req, reply, interpretPostmark(req.body));
      } catch (err) {
        if (err instanceof MalformedReport) return answer(reply, 400, err.message);
        throw err;
      }
    });
  }

  return async (server: FastifyInstance) => {
    const { ses, postmark } = webhooks;
    if (!ses && !postmark) return;
    // Own scope: relays post JSON as text/plain (SNS) or application/json, and the body is
    // needed as sent, larger than the site's forms are allowed to be.
    await server.register((scope, _opts, registered) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_req, body, done) =>
        done(null, body),
      );
      if (ses) sesRoute(scope, ses.topicArns);
      if (postmark) postmarkRoute(scope, postmark.token);
      registered();
    });
  };
}
