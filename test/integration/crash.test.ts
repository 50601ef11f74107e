// Promise 1 under a real crash: `feuilleton send` to 2,000 readers in a child process is
// killed with SIGKILL part-way, `send --resume` finishes the run, and the SMTP server's
// own record shows every reader got the installment once, except the few that were in
// flight at the kill, which may have it twice and are reported as possible duplicates.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { sendConcurrency } from '../../src/deliver/send.ts';
import { Store } from '../../src/store/index.ts';
import { spawnCli } from '../helpers/cli.ts';
import { generatedStory, makeProject, type Project } from '../helpers/project.ts';
import { SmtpSink, type Received } from '../helpers/smtp-sink.ts';

const READERS = 2000;
const exited = async (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return { code, signal };
};

const messageIdOf = (r: Received): string => /^Message-ID:\s*(<[^>]+>)/im.exec(r.raw.toString('latin1'))![1]!;

function countsByRecipient(received: Received[]): Map<string, Received[]> {
  const by = new Map<string, Received[]>();
  for (const r of received) for (const to of r.to) by.set(to, [...(by.get(to) ?? []), r]);
  return by;
}

describe('a send killed with SIGKILL and resumed', () => {
  let sink: SmtpSink;
  let project: Project;

  before(async () => {
    sink = new SmtpSink();
    await sink.start();
    project = makeProject({
      // Short installments: the size of a message has no part in exactly-once, and small ones keep the test quick.
      story: generatedStory(40),
      settings: {
        split: { targetWords: 150 },
        mail: { smtpUrl: sink.url, from: 'The Ledger <serial@example.org>', maxConnections: 5 },
        delivery: { backoffBaseMs: 5, backoffMaxMs: 20 },
      },
    });
    const app = project.open();
    try {
      const added = app.store.subscribers.importActive(
        Array.from({ length: READERS }, (_, i) => ({ email: `reader${i + 1}@example.com` })),
        'test',
      );
      assert.equal(added, READERS);
    } finally {
      app.store.close();
    }
  });

  after(async () => {
    await sink.stop();
    project.cleanup();
  });

  it('delivers to every reader exactly once, except the in-flight few, which are reported as possible duplicates', async (t) => {
    const config = project.config();
    const inFlightMax = sendConcurrency(config);

    const first = spawnCli(['--config', project.configPath, 'send']);
    await Promise.race([
      sink.waitFor((r) => r.length >= 300, 60_000),
      exited(first.child).then(() => assert.fail(`send ended before it could be killed:\n${first.output()}`)),
    ]);
    first.child.kill('SIGKILL');
    assert.equal((await exited(first.child)).signal, 'SIGKILL');
    const atKill = sink.received.length;
    assert.ok(atKill >= 300 && atKill < READERS, `killed part-way (${atKill} of ${READERS} delivered)`);

    // What the crash left: the ledger never claims more than it has in flight, never
    // calls sent what the server did not get, and holds a row for everything it got.
    const ids = new Map<string, number>();
    let inFlight: number[];
    {
      const store = Store.open(config.paths.db);
      try {
        for (const s of store.subscribers.iterate()) ids.set(s.email, s.id);
        const rows = [...ids.values()].map((id) => store.deliveries.get(id, 1));
        inFlight = rows.flatMap((d) => (d?.status === 'sending' ? [d.subscriberId] : []));
        assert.ok(inFlight.length <= inFlightMax, `${inFlight.length} rows in flight, at most ${inFlightMax}`);
        const receivedBy = new Set(sink.received.flatMap((r) => r.to.map((to) => ids.get(to)!)));
        for (const d of rows)
          if (d?.status === 'sent')
            assert.ok(receivedBy.has(d.subscriberId), `subscriber ${d.subscriberId} is marked sent and was received`);
        for (const id of receivedBy)
          assert.ok(
            ['sent', 'sending'].includes(store.deliveries.get(id, 1)?.status ?? 'none'),
            `subscriber ${id} was received and is in the ledger`,
          );
        assert.equal(store.runs.unfinished()?.status, 'running', 'the killed run is left running');
      } finally {
        store.close();
      }
    }

    const resumed = spawnCli(['--config', project.configPath, 'send', '--resume']);
    const { code } = await exited(resumed.child);
    const report = resumed.output();
    assert.equal(code, 0, report);
    assert.match(report, /Run 1 \(installment 1\): finished\./);
    assert.match(report, new RegExp(`possible duplicates ${inFlight.length}\\b`), report);
    if (inFlight.length)
      assert.match(report, new RegExp(`${inFlight.length} message\\(s\\) had been interrupted mid-send by a crash`));

    const byRecipient = countsByRecipient(sink.received);
    assert.equal(byRecipient.size, READERS, 'every reader got the installment');
    const doubled = [...byRecipient].filter(([, msgs]) => msgs.length > 1);
    assert.ok(doubled.length <= inFlight.length, `${doubled.length} doubled, ${inFlight.length} were in flight`);
    for (const [to, msgs] of doubled) {
      assert.equal(msgs.length, 2, `${to} got ${msgs.length} copies`);
      assert.ok(inFlight.includes(ids.get(to)!), `${to} got two copies and was in flight at the kill`);
      assert.equal(
        messageIdOf(msgs[0]!),
        messageIdOf(msgs[1]!),
        'a re-sent copy carries the same Message-ID, so clients can collapse it',
      );
    }
    assert.equal(sink.received.length, READERS + doubled.length);
    t.diagnostic(
      `killed after ${atKill} messages; ${inFlight.length} in flight (at most ${inFlightMax}); ${doubled.length} reader(s) got a second copy`,
    );

    const store = Store.open(config.paths.db);
    try {
      assert.deepEqual(
        { ...store.deliveries.countByStatus() },
        { queued: 0, sending: 0, sent: READERS, failed: 0, possibleDuplicates: inFlight.length },
      );
      for (const id of inFlight) assert.equal(store.deliveries.get(id, 1)!.possibleDuplicate, true);
      assert.equal(store.runs.unfinished(), undefined);
      assert.equal(store.runs.get(1)!.status, 'finished');
      assert.equal(store.runs.get(2), undefined, 'the resume continued run 1 rather than starting another');
    } finally {
      store.close();
    }
  });
});
