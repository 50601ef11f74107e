// Projects for the compose-once tests: a runtime whose relay is never dialled (only the
// bytes handed over are checked), closed and removed after the file's tests.
import { after } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { makeProject, type Project } from './project.ts';

export const silent = createLogger({ level: 'silent', pretty: false });

/** Addresses that stress an address's encoding: long local parts, international domains, punycode. */
export const HARD_READERS = [
  'a@example.com',
  'Reader.With.A.Rather.Long.Local.Part+serial-subscription@subdomain.of.an.example-domain.org',
  'leser@bücher.example',
  'x@例え.jp',
  'z@xn--mnchen-3ya.example',
];

/** A maker of such runtimes for one test file: `settings` over the defaults, `mail` added to its mail settings. */
export function composeSites(): (
  settings: Record<string, unknown>,
  opts?: { story?: string; mail?: Record<string, unknown> },
) => Runtime {
  const open: Array<{ project: Project; runtime: Runtime }> = [];
  after(() => {
    for (const o of open) {
      o.runtime.close();
      o.project.cleanup();
    }
  });
  return (settings, opts = {}) => {
    const project = makeProject({
      story: opts.story,
      settings: {
        mail: { smtpUrl: 'smtp://127.0.0.1:9', from: 'Die Laterne <serial@example.org>', ...opts.mail },
        ...settings,
      },
    });
    const runtime = createRuntime(project.open(), silent);
    open.push({ project, runtime });
    return runtime;
  };
}
