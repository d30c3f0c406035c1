/**
 * A real OpenID Provider for tests: oidc-provider (certified) in-process on 127.0.0.1, http, random
 * port. Two static confidential clients (client_secret_basic and client_secret_post), accounts
 * registered by the test, devInteractions off, and `login()` that walks the authorization flow with
 * plain fetch the way a browser would. `behaviour` makes it misbehave for attack tests.
 */
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
// @ts-expect-error -- oidc-provider 9 ships no type declarations; the part used here is typed below.
import UntypedProvider from 'oidc-provider';
import type { OidcSettings } from '../../src/sso/oidc.js';

interface InteractionDetails {
  prompt: { name: string; details: Record<string, unknown> };
  params: Record<string, unknown>;
}
interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  Grant: new (init: { accountId: string; clientId: string }) => {
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(indicator: string, scope: string): void;
    save(): Promise<string>;
  };
}
const Provider = UntypedProvider as new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

export interface TestAccount {
  sub: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  /** Extra claims, released under the `corp` scope (e.g. custom claim names). */
  extra?: Record<string, unknown>;
}

export interface DecodedJwt {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

export interface IdpBehaviour {
  /** Answer discovery with a 500. */
  failDiscovery: boolean;
  /** Replace the ID token of every token response; gets the real one decoded, returns a compact JWS. */
  idToken?: (real: DecodedJwt) => string;
  /** Rewrite the discovery document. */
  discovery?: (real: Record<string, unknown>) => Record<string, unknown>;
  /** Rewrite every userinfo response body. */
  userinfo?: (real: Record<string, unknown>) => Record<string, unknown>;
}

export interface TestIdp {
  issuer: string;
  clients: Record<'basic' | 'post', { clientId: string; clientSecret: string }>;
  /** The key the provider signs ID tokens with, and its `kid`, to re-sign tampered claims. */
  signingKey: KeyObject;
  kid: string;
  /** Requests for `/.well-known/openid-configuration` so far. */
  discoveryRequests: number;
  behaviour: IdpBehaviour;
  /** Portico settings for this IdP: the basic-auth client unless overridden. */
  settings(overrides?: Partial<OidcSettings>): OidcSettings;
  /** Signs `account` in at `authorizationUrl` and returns the URL the browser is sent back to (code, state, iss). */
  login(authorizationUrl: string, account: TestAccount): Promise<URL>;
  /** The user refuses: the callback URL carries `error` (default access_denied) and the state. */
  deny(authorizationUrl: string, error?: string): Promise<URL>;
  close(): Promise<void>;
}

const PASSTHROUGH = 'x-test-idp-passthrough';

export async function startOidcIdp(options: { redirectUris: string[] }): Promise<TestIdp> {
  const accounts = new Map<string, TestAccount>();
  const kid = randomUUID();
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const clients = {
    basic: { clientId: 'portico-basic', clientSecret: `basic-${randomUUID()}` },
    post: { clientId: 'portico-post', clientSecret: `post-${randomUUID()}` },
  };
  // Each login() passes its choice to the interaction route; keyed by interaction uid.
  const pending = new Map<string, { sub: string } | { error: string }>();

  let provider!: OidcProvider;
  let handle!: ReturnType<OidcProvider['callback']>;
  let issuer = '';
  const idp: TestIdp = {
    issuer,
    clients,
    signingKey: privateKey,
    kid,
    discoveryRequests: 0,
    behaviour: { failDiscovery: false },
    settings: (overrides) => ({
      authority: issuer,
      clientId: clients.basic.clientId,
      clientSecret: clients.basic.clientSecret,
      clientAuthMethod: 'client_secret_basic',
      scopes: ['openid', 'email', 'profile'],
      claims: { subject: 'sub', email: 'email', name: 'name' },
      ...overrides,
    }),
    login: (url, account) => {
      accounts.set(account.sub, account);
      return drive(url, { sub: account.sub });
    },
    deny: (url, error = 'access_denied') => drive(url, { error }),
    close: () =>
      new Promise((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  });

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', issuer);
    const interaction = /^\/interaction\/([^/]+)\/auto$/.exec(url.pathname);
    if (interaction) return interact(req, res, interaction[1]!);
    // What rewrite() forwards to the real provider is neither counted nor tampered with again.
    if (req.headers[PASSTHROUGH] !== '1') {
      const { failDiscovery, discovery, idToken, userinfo } = idp.behaviour;
      if (url.pathname === '/.well-known/openid-configuration') {
        idp.discoveryRequests += 1;
        if (failDiscovery) return sendJson(res, 500, { error: 'server_error' });
        if (discovery) return rewrite(req, res, discovery);
      }
      if (url.pathname === '/token' && req.method === 'POST' && idToken) {
        return rewrite(req, res, (body) =>
          typeof body.id_token === 'string' ? { ...body, id_token: idToken(decodeJwt(body.id_token)) } : body,
        );
      }
      if (url.pathname === '/me' && userinfo) return rewrite(req, res, userinfo);
    }
    return handle(req, res);
  }

  async function interact(req: IncomingMessage, res: ServerResponse, uid: string) {
    const choice = pending.get(uid);
    if (!choice) return sendJson(res, 400, { error: 'no login chosen for this interaction' });
    const details = await provider.interactionDetails(req, res);
    if ('error' in choice) {
      return provider.interactionFinished(req, res, { error: choice.error, error_description: 'The user said no.' });
    }
    if (details.prompt.name === 'login') {
      const result = { login: { accountId: choice.sub } };
      return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    }
    const grant = new provider.Grant({ accountId: choice.sub, clientId: String(details.params.client_id) });
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } });
  }

  // Forwards the request to the real provider (same server, marked) and rewrites its JSON answer.
  async function rewrite(
    req: IncomingMessage,
    res: ServerResponse,
    change: (body: Record<string, unknown>) => Record<string, unknown>,
  ) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = new Headers({ [PASSTHROUGH]: '1' });
    for (const name of ['authorization', 'content-type', 'accept']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers.set(name, value);
    }
    const real = await fetch(new URL(req.url ?? '/', issuer), {
      method: req.method ?? 'GET',
      headers,
      ...(chunks.length > 0 && { body: Buffer.concat(chunks) }),
    });
    const body = (await real.json()) as Record<string, unknown>;
    sendJson(res, real.status, real.ok ? change(body) : body);
  }

  // A browser without JavaScript: follows redirects, keeps cookies, and at the interaction page
  // submits the test's choice. Stops at the first URL outside the IdP: the client's redirect_uri.
  async function drive(authorizationUrl: string, choice: { sub: string } | { error: string }): Promise<URL> {
    const origin = new URL(issuer).origin;
    let next = new URL(authorizationUrl);
    if (next.origin !== origin) throw new Error(`${authorizationUrl} is not an authorization URL of ${issuer}`);
    const jar = new Map<string, string>();
    for (let hop = 0; hop < 10; hop += 1) {
      if (next.origin !== origin) return next;
      const interaction = /^\/interaction\/([^/]+)$/.exec(next.pathname);
      if (interaction) {
        pending.set(interaction[1]!, choice);
        next = new URL(`${next.pathname}/auto`, origin);
      }
      const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
      const response = await fetch(next, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      for (const line of response.headers.getSetCookie()) {
        const [pair = ''] = line.split(';');
        const at = pair.indexOf('=');
        const [name, value] = [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
        if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) jar.delete(name);
        else jar.set(name, value);
      }
      const location = response.headers.get('location');
      if (!location) throw new Error(`IdP answered ${response.status} at ${next.pathname}: ${await response.text()}`);
      next = new URL(location, next);
    }
    throw new Error('IdP login did not reach the redirect_uri in 10 redirects');
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  idp.issuer = issuer;
  provider = new Provider(issuer, {
    clients: [
      {
        client_id: clients.basic.clientId,
        client_secret: clients.basic.clientSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: options.redirectUris,
      },
      {
        client_id: clients.post.clientId,
        client_secret: clients.post.clientSecret,
        token_endpoint_auth_method: 'client_secret_post',
        redirect_uris: options.redirectUris,
      },
    ],
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] },
    cookies: { keys: [randomUUID()] },
    findAccount: (_ctx: unknown, sub: string) => {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        claims: () => ({
          sub,
          email: account.email,
          email_verified: account.emailVerified,
          name: account.name,
          ...account.extra,
        }),
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      corp: ['employee_id', 'mail', 'display_name'],
    },
    // Fixed lifetimes (seconds) also keep oidc-provider from printing a notice per default used.
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    // Refuse a client that skips PKCE, so the good-login test proves Portico sends it.
    pkce: { required: () => true },
  });
  handle = provider.callback();
  return idp;
}

function sendJson(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

export function decodeJwt(token: string): DecodedJwt {
  const [header = '', payload = ''] = token.split('.');
  const part = (text: string) => JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: part(header), claims: part(payload) };
}

/** A compact JWS: RS256 with `key`, or `alg: none` with an empty signature (RFC 7519 §6.1). */
export function signJwt(header: Record<string, unknown>, claims: Record<string, unknown>, key?: KeyObject): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${part(header)}.${part(claims)}`;
  if (header.alg === 'none') return `${input}.`;
  if (header.alg !== 'RS256' || !key) throw new Error('signJwt signs RS256 with a key, or alg none');
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

/** A TCP listener that accepts and never answers: an IdP that hangs. */
export async function startSilentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
