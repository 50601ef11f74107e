// A browser's share of HTTP, for tests of the real server: a cookie jar, no redirects
// followed, form posts, and the subscribe form with its CSRF token.
import assert from 'node:assert/strict';

/** Where the server under test listens: its URL, or a site whose serving URL is read at each request. */
export type Target = string | { serving: { url: string } };

export class Client {
  private readonly jar = new Map<string, string>();

  constructor(
    private readonly target: Target,
    private readonly headers: Record<string, string> = {},
  ) {}

  async get(url: string): Promise<{ res: Response; body: string }> {
    return this.request(url, { method: 'GET' });
  }

  async post(
    url: string,
    form: Record<string, string> | string,
    opts: { contentType?: string; cookies?: boolean } = {},
  ): Promise<{ res: Response; body: string }> {
    const body = typeof form === 'string' ? form : new URLSearchParams(form).toString();
    return this.request(
      url,
      { method: 'POST', body, headers: { 'content-type': opts.contentType ?? 'application/x-www-form-urlencoded' } },
      opts.cookies ?? true,
    );
  }

  /** The home page's form token, with its cookie now in the jar. */
  async csrfToken(): Promise<string> {
    const { res, body } = await this.get('/');
    assert.equal(res.status, 200);
    const m = /name="_csrf" value="([^"]+)"/.exec(body);
    assert.ok(m, 'the subscribe form carries a CSRF token');
    return m[1]!;
  }

  async subscribe(
    email: string,
    extra: Record<string, string> = { adult: 'yes' },
  ): Promise<{ res: Response; body: string }> {
    const _csrf = await this.csrfToken();
    return this.post('/subscribe', { email, _csrf, website: '', ...extra });
  }

  private async request(url: string, init: RequestInit, withCookies = true): Promise<{ res: Response; body: string }> {
    // Links in mail point at config.baseUrl; the same path is asked of the server under test.
    const u = new URL(url, 'http://unused');
    const base = typeof this.target === 'string' ? this.target : this.target.serving.url;
    const target = new URL(u.pathname + u.search, base);
    const headers: Record<string, string> = {
      ...this.headers,
      ...(init.headers as Record<string, string> | undefined),
    };
    if (withCookies && this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(target, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      this.jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    return { res, body: await res.text() };
  }
}
