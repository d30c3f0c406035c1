/**
 * The OIDC protocol step against a real oidc-provider on 127.0.0.1 (test/support/oidc-idp.ts): the
 * good login in both client-auth styles, then every refusal an attacker or a broken IdP can cause.
 */
import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SsoError } from '../../src/sso/errors.js';
import {
  createOidcClients,
  type OidcClientKey,
  type OidcClients,
  type OidcSecrets,
  type OidcSettings,
} from '../../src/sso/oidc.js';
import {
  signJwt,
  startOidcIdp,
  startSilentServer,
  type DecodedJwt,
  type TestAccount,
  type TestIdp,
} from '../support/oidc-idp.js';

const REDIRECT_URI = 'http://127.0.0.1:9/sso/oidc/acme/callback';
const OTHER_KEY = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ALICE: TestAccount = { sub: 'alice-0001', email: 'alice@acme.test', emailVerified: true, name: 'Alice Example' };

let idp: TestIdp;
let revision = 0;
// A fresh revision per sign-in keeps tests from sharing a cached discovery unless they mean to.
const nextKey = (): OidcClientKey => ({ organizationId: 'org-acme', revision: ++revision });
const clients = createOidcClients({ allowHttp: true, timeoutMs: 2_000 });

beforeAll(async () => {
  idp = await startOidcIdp({ redirectUris: [REDIRECT_URI] });
});
afterAll(() => idp.close());
afterEach(() => {
  idp.behaviour = { failDiscovery: false };
});

/** begin → IdP login → callback; `finish` completes it with the query and secrets, or replacements. */
async function signIn(options: { settings?: OidcSettings; account?: TestAccount; oidc?: OidcClients } = {}) {
  const { settings = idp.settings(), account = ALICE, oidc = clients } = options;
  const key = nextKey();
  const { url, secrets } = await oidc.begin(key, settings, { redirectUri: REDIRECT_URI });
  const callback = await idp.login(url, account);
  const query = callback.searchParams;
  return {
    secrets,
    query,
    finish: (replace: { query?: URLSearchParams; secrets?: OidcSecrets } = {}) =>
      oidc.finish(key, settings, {
        redirectUri: REDIRECT_URI,
        query: replace.query ?? query,
        secrets: replace.secrets ?? secrets,
      }),
  };
}

async function refusal(work: Promise<unknown>): Promise<SsoError> {
  const error = await work.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(SsoError);
  return error as SsoError;
}

/** Signs in with the ID token replaced by `forge(real)` and returns the refusal. */
async function refusalOfForgedToken(forge: (real: DecodedJwt) => string) {
  idp.behaviour.idToken = forge;
  return refusal((await signIn()).finish());
}
const now = () => Math.floor(Date.now() / 1000);
const resigned = (change: (claims: Record<string, unknown>) => Record<string, unknown>) => (real: DecodedJwt) =>
  signJwt(real.header, change(real.claims), idp.signingKey);

describe('a good OIDC sign-in', () => {
  it('sends PKCE S256, state and nonce, checks the signed ID token and merges userinfo claims', async () => {
    let idToken: DecodedJwt | undefined;
    idp.behaviour.idToken = (real) => {
      idToken = real;
      return signJwt(real.header, real.claims, idp.signingKey);
    };
    const key = nextKey();
    const settings = idp.settings({ scopes: ['email', 'profile'] });
    const { url, secrets } = await clients.begin(key, settings, { redirectUri: REDIRECT_URI, loginHint: ALICE.email });
    const sent = new URL(url).searchParams;
    expect(Object.fromEntries(sent)).toMatchObject({
      response_type: 'code',
      client_id: idp.clients.basic.clientId,
      redirect_uri: REDIRECT_URI,
      scope: 'openid email profile',
      state: secrets.state,
      nonce: secrets.nonce,
      code_challenge_method: 'S256',
      login_hint: ALICE.email,
    });
    expect(sent.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(new Set([secrets.state, secrets.nonce, secrets.codeVerifier]).size).toBe(3);

    const callback = await idp.login(url, ALICE);
    expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT_URI);
    const identity = await clients.finish(key, settings, {
      redirectUri: REDIRECT_URI,
      query: callback.searchParams,
      secrets,
    });

    expect(identity).toMatchObject({
      issuer: idp.issuer,
      subject: ALICE.sub,
      email: ALICE.email,
      emailVerified: true,
      name: ALICE.name,
    });
    expect(identity.claims).toMatchObject({ aud: idp.clients.basic.clientId, nonce: secrets.nonce });
    // The code flow's ID token carries no profile claims: email and name came from userinfo.
    expect(idToken?.claims.email).toBeUndefined();
    expect(idToken?.header.alg).toBe('RS256');
  });

  it('authenticates with client_secret_post when the organization says so', async () => {
    const settings = idp.settings({
      clientId: idp.clients.post.clientId,
      clientSecret: idp.clients.post.clientSecret,
      clientAuthMethod: 'client_secret_post',
    });
    const identity = await (await signIn({ settings })).finish();
    expect(identity.subject).toBe(ALICE.sub);
  });

  it('reads subject, email and name from the configured claim names', async () => {
    const settings = idp.settings({
      scopes: ['corp'],
      claims: { subject: 'employee_id', email: 'mail', name: 'display_name' },
    });
    const account = { sub: 'bob-0002', extra: { employee_id: 'E-42', mail: 'bob@acme.test', display_name: 'Bob' } };
    const identity = await (await signIn({ settings, account })).finish();
    // email_verified speaks of `email` only, so it says nothing about a custom email claim.
    expect(identity).toMatchObject({ subject: 'E-42', email: 'bob@acme.test', name: 'Bob', emailVerified: null });
  });

  it('accepts email_verified sent as a string, as some IdPs do', async () => {
    const account = { sub: 'erin-0005', email: 'erin@acme.test', extra: { email_verified: 'true' } };
    const identity = await (await signIn({ account })).finish();
    expect(identity).toMatchObject({ email: 'erin@acme.test', emailVerified: true });
  });

  it('takes the identity from the ID token alone when the IdP offers no userinfo endpoint', async () => {
    idp.behaviour.discovery = ({ userinfo_endpoint: _userinfo, ...document }) => document;
    const run = await signIn();
    const identity = await run.finish();
    expect(identity).toMatchObject({ subject: ALICE.sub, email: null, name: null });
  });

  it('reports missing email and name as null', async () => {
    const identity = await (await signIn({ account: { sub: 'carol-0003' } })).finish();
    expect(identity).toMatchObject({ subject: 'carol-0003', email: null, emailVerified: null, name: null });
  });
});

describe('a callback that does not belong to the sign-in is refused', () => {
  it('refuses a state that differs, is missing or is repeated', async () => {
    const run = await signIn();
    const variants = [new URLSearchParams(run.query), new URLSearchParams(run.query), new URLSearchParams(run.query)];
    variants[0]!.set('state', `${run.secrets.state}x`);
    variants[1]!.delete('state');
    variants[2]!.append('state', run.secrets.state);
    for (const query of variants) {
      const error = await refusal(run.finish({ query }));
      expect(error.code).toBe('oidc.stateMismatch');
    }
  });

  it('refuses an ID token whose nonce is not the one this sign-in sent', async () => {
    const run = await signIn();
    const error = await refusal(run.finish({ secrets: { ...run.secrets, nonce: 'another-nonce' } }));
    expect(error.code).toBe('oidc.nonceMismatch');
  });

  it('refuses a validly signed ID token carrying another nonce', async () => {
    const error = await refusalOfForgedToken(resigned((claims) => ({ ...claims, nonce: 'replayed-nonce' })));
    expect(error.code).toBe('oidc.nonceMismatch');
  });

  it('refuses a validly signed ID token without a nonce', async () => {
    const error = await refusalOfForgedToken(resigned(({ nonce: _nonce, ...claims }) => claims));
    expect(error.code).toBe('oidc.nonceMismatch');
  });

  it('refuses a code exchanged with another PKCE verifier', async () => {
    const run = await signIn();
    const error = await refusal(run.finish({ secrets: { ...run.secrets, codeVerifier: 'x'.repeat(43) } }));
    expect(error.code).toBe('oidc.idpError');
    expect(error.message).toContain('invalid_grant');
  });

  it('refuses a replayed authorization code', async () => {
    const run = await signIn();
    await run.finish();
    const error = await refusal(run.finish());
    expect(error.code).toBe('oidc.idpError');
  });

  it('turns an IdP error response into oidc.idpError naming only the OAuth error code', async () => {
    const key = nextKey();
    const settings = idp.settings();
    const { url, secrets } = await clients.begin(key, settings, { redirectUri: REDIRECT_URI });
    const callback = await idp.deny(url);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    const error = await refusal(
      clients.finish(key, settings, { redirectUri: REDIRECT_URI, query: callback.searchParams, secrets }),
    );
    expect(error.code).toBe('oidc.idpError');
    expect(error.message).toContain('access_denied');
    expect(error.message).not.toContain('The user said no');
  });

  it('treats an error response with a foreign state as a state mismatch', async () => {
    const run = await signIn();
    const query = new URLSearchParams({ error: 'access_denied', state: 'forged', iss: idp.issuer });
    const error = await refusal(run.finish({ query }));
    expect(error.code).toBe('oidc.stateMismatch');
  });
});

describe('a forged or tampered ID token is refused', () => {
  // The third column is the library's diagnostic kept in the cause: each case must fail for its own reason.
  it.each([
    ['another issuer', resigned((claims) => ({ ...claims, iss: 'http://127.0.0.1:1' })), /"iss"/],
    ['another audience', resigned((claims) => ({ ...claims, aud: 'someone-else' })), /"aud"/],
    [
      'an extra untrusted audience',
      resigned((claims) => ({ ...claims, aud: [claims.aud, 'someone-else'] })),
      /untrusted audiences/,
    ],
    ['an expired token', resigned((claims) => ({ ...claims, iat: now() - 7200, exp: now() - 3600 })), /"exp"/],
    [
      'a signature by another key under the same kid',
      (real: DecodedJwt) => signJwt(real.header, real.claims, OTHER_KEY),
      /signature verification failed/,
    ],
    ['alg none', (real: DecodedJwt) => signJwt({ ...real.header, alg: 'none' }, real.claims), /"alg"/],
    ['a token that is not a JWT', () => 'not-a-jwt', /Invalid JWT/],
  ])('refuses %s as oidc.tokenInvalid', async (_name, forge, because) => {
    const error = await refusalOfForgedToken(forge);
    expect(error.code).toBe('oidc.tokenInvalid');
    expect((error.cause as Error).message).toMatch(because);
  });

  it('tolerates clock skew up to clockToleranceSeconds and no further', async () => {
    idp.behaviour.idToken = resigned((claims) => ({ ...claims, exp: now() - 30 }));
    await expect((await signIn()).finish()).resolves.toMatchObject({ subject: ALICE.sub });
    const exact = createOidcClients({ allowHttp: true, clockToleranceSeconds: 0 });
    const error = await refusal((await signIn({ oidc: exact })).finish());
    expect(error.code).toBe('oidc.tokenInvalid');
  });

  it('refuses a callback whose iss parameter names another issuer (RFC 9207 mix-up defence)', async () => {
    const run = await signIn();
    const query = new URLSearchParams(run.query);
    query.set('iss', 'http://127.0.0.1:1');
    const error = await refusal(run.finish({ query }));
    expect(error.code).toBe('oidc.tokenInvalid');
  });

  it('refuses a token signed with an algorithm other than the pinned one', async () => {
    const settings = idp.settings({ idTokenSignedResponseAlg: 'PS256' });
    const error = await refusal((await signIn({ settings })).finish());
    expect(error.code).toBe('oidc.tokenInvalid');
    expect((error.cause as Error).message).toMatch(/"alg"/);
  });
});

describe('identity checks after the token', () => {
  it('refuses a userinfo response about another subject', async () => {
    idp.behaviour.userinfo = (real) => ({ ...real, sub: 'mallory-0666', email: 'mallory@evil.test' });
    const run = await signIn();
    const error = await refusal(run.finish());
    expect(error.code).toBe('oidc.userinfoMismatch');
    expect((error.cause as Error).message).toMatch(/"sub"/);
  });

  it('refuses a sign-in without the configured subject claim', async () => {
    const settings = idp.settings({ scopes: ['corp'], claims: { subject: 'employee_id', email: 'mail', name: 'name' } });
    const error = await refusal((await signIn({ settings, account: { sub: 'dave-0004' } })).finish());
    expect(error.code).toBe('oidc.subjectMissing');
  });

  it.each(['client_secret_basic', 'client_secret_post'] as const)(
    'reports a client secret the IdP refuses (%s) as a configuration error',
    async (clientAuthMethod) => {
      const client = clientAuthMethod === 'client_secret_basic' ? idp.clients.basic : idp.clients.post;
      const settings = idp.settings({ clientId: client.clientId, clientSecret: 'wrong-secret', clientAuthMethod });
      const error = await refusal((await signIn({ settings })).finish());
      expect(error.code).toBe('sso.invalidConfiguration');
    },
  );

  it('keeps secrets, codes and tokens out of the error and its causes', async () => {
    idp.behaviour.idToken = resigned((claims) => ({ ...claims, aud: 'someone-else' }));
    const run = await signIn();
    const failures = [
      await refusal(run.finish()), // the audience check
      await refusal(run.finish()), // the code, now spent: invalid_grant from the token endpoint
    ];
    expect(failures.map((error) => error.code)).toEqual(['oidc.tokenInvalid', 'oidc.idpError']);
    const { secrets, query } = run;
    for (const error of failures) {
      const printed = inspect(error, { depth: 20 }) + JSON.stringify(error);
      const secretValues = [idp.clients.basic.clientSecret, query.get('code')!, secrets.codeVerifier, secrets.nonce, secrets.state];
      for (const secret of secretValues) {
        expect(printed).not.toContain(secret);
      }
    }
  });
});

describe('discovery and transport', () => {
  it('answers sso.idpUnavailable quickly when the IdP refuses connections', async () => {
    const silent = await startSilentServer();
    const authority = silent.url;
    await silent.close();
    const started = performance.now();
    const error = await refusal(clients.begin(nextKey(), idp.settings({ authority }), { redirectUri: REDIRECT_URI }));
    expect(error.code).toBe('sso.idpUnavailable');
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('gives up on an IdP that never answers after the timeout', async () => {
    const silent = await startSilentServer();
    try {
      const quick = createOidcClients({ allowHttp: true, timeoutMs: 300 });
      const started = performance.now();
      const settings = idp.settings({ authority: silent.url });
      const error = await refusal(quick.begin(nextKey(), settings, { redirectUri: REDIRECT_URI }));
      expect(error.code).toBe('sso.idpUnavailable');
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      await silent.close();
    }
  });

  it('requires https unless SSO_ALLOW_HTTP is on, without contacting the IdP', async () => {
    const strict = createOidcClients({ allowHttp: false });
    const before = idp.discoveryRequests;
    const error = await refusal(strict.begin(nextKey(), idp.settings(), { redirectUri: REDIRECT_URI }));
    expect(error.code).toBe('sso.invalidConfiguration');
    expect(idp.discoveryRequests).toBe(before);
  });

  it('refuses an authority or redirect URI that cannot be used', async () => {
    const settings = idp.settings({ authority: 'not a url' });
    const bad = await refusal(clients.begin(nextKey(), settings, { redirectUri: REDIRECT_URI }));
    expect(bad.code).toBe('sso.invalidConfiguration');
    const withQuery = await refusal(clients.begin(nextKey(), idp.settings(), { redirectUri: `${REDIRECT_URI}?x=1` }));
    expect(withQuery.code).toBe('sso.invalidConfiguration');
    const noClient = await refusal(clients.begin(nextKey(), idp.settings({ clientId: '' }), { redirectUri: REDIRECT_URI }));
    expect(noClient.code).toBe('sso.invalidConfiguration');
  });

  it('shares one discovery among concurrent sign-ins and rediscovers on a new revision or eviction', async () => {
    const own = createOidcClients({ allowHttp: true });
    const settings = idp.settings();
    const key = { organizationId: 'org-flight', revision: 1 };
    const before = idp.discoveryRequests;
    await Promise.all(Array.from({ length: 8 }, () => own.begin(key, settings, { redirectUri: REDIRECT_URI })));
    expect(idp.discoveryRequests - before).toBe(1);
    await own.begin(key, settings, { redirectUri: REDIRECT_URI });
    expect(idp.discoveryRequests - before).toBe(1);

    await own.begin({ ...key, revision: 2 }, settings, { redirectUri: REDIRECT_URI });
    expect(idp.discoveryRequests - before).toBe(2);
    own.evict(key.organizationId);
    await own.begin({ ...key, revision: 2 }, settings, { redirectUri: REDIRECT_URI });
    expect(idp.discoveryRequests - before).toBe(3);
    // Other organizations keep their own entries.
    await own.begin({ organizationId: 'org-other', revision: 2 }, settings, { redirectUri: REDIRECT_URI });
    expect(idp.discoveryRequests - before).toBe(4);
  });

  it('refuses a discovery document that names another issuer', async () => {
    idp.behaviour.discovery = (document) => ({ ...document, issuer: 'http://127.0.0.1:1' });
    const error = await refusal(clients.begin(nextKey(), idp.settings(), { redirectUri: REDIRECT_URI }));
    expect(error.code).toBe('sso.invalidConfiguration');
  });

  it('reports a discovery document without a token endpoint as a configuration error', async () => {
    idp.behaviour.discovery = ({ token_endpoint: _token, ...document }) => document;
    const error = await refusal((await signIn()).finish());
    expect(error.code).toBe('sso.invalidConfiguration');
  });

  it('does not cache a failed discovery', async () => {
    const own = createOidcClients({ allowHttp: true });
    const key = { organizationId: 'org-flaky', revision: 1 };
    idp.behaviour.failDiscovery = true;
    const error = await refusal(own.begin(key, idp.settings(), { redirectUri: REDIRECT_URI }));
    expect(error.code).toBe('sso.idpUnavailable');
    idp.behaviour.failDiscovery = false;
    const { url } = await own.begin(key, idp.settings(), { redirectUri: REDIRECT_URI });
    expect(url.startsWith(idp.issuer)).toBe(true);
  });
});
