/**
 * HTTP-level SSO helpers: a browser that starts a sign-in at the test app, lets the test IdP log a
 * person in, and brings the IdP's answer back to the app with the browser-binding cookie, as a
 * real browser would (redirects followed by hand, cookie sent back by hand).
 */
import { randomBytes } from 'node:crypto';
import type { TestApp } from './app.js';
import type { TestAccount, TestIdp } from './oidc-idp.js';

/** The cookie /sso/:identifier/login sets to bind a transaction to the browser that started it. */
export const SSO_BROWSER_COOKIE = 'portico_sso_browser';

/** Organization identifiers for SSO tests: the IdP must know each redirect URI before it starts. */
export function ssoIdentifiers(count: number, label = 'sso'): string[] {
  const run = randomBytes(3).toString('hex');
  return Array.from({ length: count }, (_, i) => `${label}-${run}-${i}`);
}

/** The redirect URI the app (PUBLIC_URL http://portico.test) sends to the IdP for `identifier`. */
export const oidcRedirectUri = (identifier: string) => `http://portico.test/sso/oidc/${identifier}/callback`;

/** A `PUT /api/v1/organizations/:oid/sso` body for an OIDC sign-in through `idp`. */
export function oidcSsoBody(idp: TestIdp, overrides: { enabled?: boolean; jit?: boolean; returnUrls?: string[]; clientSecret?: string | null } = {}) {
  const settings = idp.settings();
  const { clientSecret = settings.clientSecret } = overrides;
  return {
    enabled: overrides.enabled ?? true,
    kind: 'oidc' as const,
    jit: overrides.jit ?? false,
    returnUrls: overrides.returnUrls ?? [],
    oidc: {
      authority: settings.authority,
      clientId: settings.clientId,
      ...(clientSecret === null ? {} : { clientSecret }),
    },
  };
}

/** A sign-in started at the app: the IdP's authorization URL and the browser cookie the app set. */
export interface StartedSignIn {
  status: number;
  location: string | null;
  /** `portico_sso_browser=<value>`, ready for a Cookie header; null when none was set. */
  cookie: string | null;
  body: string;
}

/** `GET /sso/:identifier/login` as a browser, redirects not followed. */
export async function startSignIn(
  t: TestApp,
  identifier: string,
  options: { returnTo?: string; loginHint?: string; cookie?: string; accept?: string } = {},
): Promise<StartedSignIn> {
  const query = new URLSearchParams();
  if (options.returnTo !== undefined) query.set('returnTo', options.returnTo);
  if (options.loginHint !== undefined) query.set('login_hint', options.loginHint);
  const search = query.size > 0 ? `?${query}` : '';
  const headers: Record<string, string> = { accept: options.accept ?? 'text/html' };
  if (options.cookie) headers.cookie = options.cookie;
  const res = await fetch(`${t.url}/sso/${encodeURIComponent(identifier)}/login${search}`, { redirect: 'manual', headers });
  const set = res.headers.getSetCookie().find((line) => line.startsWith(`${SSO_BROWSER_COOKIE}=`));
  return {
    status: res.status,
    location: res.headers.get('location'),
    cookie: set ? set.split(';')[0]! : null,
    body: await res.text(),
  };
}

/** The IdP's redirect to `http://portico.test/...` re-pointed at the running test app. */
export const toTestApp = (t: TestApp, callback: URL) => `${t.url}${callback.pathname}${callback.search}`;

/**
 * Starts a sign-in at the app and logs `account` in at the IdP (or has the IdP refuse when
 * `deny` is set); answers the callback URL on the test app and the browser's cookie.
 */
export async function signInAtIdp(
  t: TestApp,
  idp: TestIdp,
  identifier: string,
  account: TestAccount | { deny: string },
  options: { returnTo?: string } = {},
): Promise<{ callbackUrl: string; cookie: string }> {
  const started = await startSignIn(t, identifier, options);
  if (started.status !== 302 || !started.location || !started.cookie) {
    throw new Error(`sign-in at ${identifier} did not start: ${started.status} ${started.body.slice(0, 300)}`);
  }
  const callback = 'deny' in account ? await idp.deny(started.location, account.deny) : await idp.login(started.location, account);
  return { callbackUrl: toTestApp(t, callback), cookie: started.cookie };
}

/** The browser brings the IdP's answer back: `GET` of the callback URL with (or without) its cookie. */
export async function fetchCallback(
  callbackUrl: string,
  options: { cookie?: string | null; accept?: string } = {},
): Promise<{ status: number; headers: Headers; text: string; body: any }> {
  const headers: Record<string, string> = { accept: options.accept ?? 'application/json' };
  if (options.cookie) headers.cookie = options.cookie;
  const res = await fetch(callbackUrl, { redirect: 'manual', headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* a page, not JSON */
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** A log destination that keeps every line, for tests that look a reference up in the log. */
export function captureLogLines() {
  const raw: string[] = [];
  return {
    raw,
    stream: { write: (line: string) => void raw.push(line) },
    entries: (): Record<string, any>[] => raw.map((line) => JSON.parse(line) as Record<string, any>),
  };
}
