/**
 * The OIDC protocol step of Portico's SSO adapter: authorization-code flow with PKCE (S256), state
 * and nonce, ID-token signature checked against the IdP's JWKS, userinfo merged. Pure: the caller
 * keeps `OidcSecrets` in its server-side transaction and passes the organization's settings.
 */
import { timingSafeEqual } from 'node:crypto';
import * as client from 'openid-client';
import { SsoError, type SsoErrorCode } from './errors.js';

export interface OidcSettings {
  /** Issuer URL; the discovery document is read from `<authority>/.well-known/openid-configuration`. */
  authority: string;
  clientId: string;
  clientSecret: string;
  clientAuthMethod: 'client_secret_basic' | 'client_secret_post';
  scopes: string[];
  /** Claim names to read the identity from (e.g. `oid` for Entra, a custom `mail`). */
  claims: { subject: string; email: string; name: string };
  /** Pinned ID-token signing algorithm; RS256 when absent (OIDC Core §15.1 makes it mandatory). */
  idTokenSignedResponseAlg?: string;
}

/** Per-transaction values to keep server-side between begin() and finish(); never sent to the browser as-is. */
export interface OidcSecrets {
  state: string;
  nonce: string;
  codeVerifier: string;
}

export interface OidcIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  /** Only reported when the email claim is the standard `email`: `email_verified` describes that claim alone. */
  emailVerified: boolean | null;
  name: string | null;
  /** ID-token claims over userinfo claims (the signed token wins on conflicts). */
  claims: Record<string, unknown>;
}

/** A cached discovery is valid for one revision of an organization's settings: bump it on every change. */
export interface OidcClientKey {
  organizationId: string;
  revision: number;
}

export interface OidcClientsOptions {
  /** SSO_ALLOW_HTTP: accept `http:` IdP endpoints (local testing only). */
  allowHttp: boolean;
  /** Per request to the IdP (discovery, token, JWKS, userinfo). */
  timeoutMs?: number;
  /** Allowed clock difference for exp/nbf/iat; IdPs drifting by a minute or two are common. */
  clockToleranceSeconds?: number;
}

export interface OidcClients {
  begin(
    key: OidcClientKey,
    settings: OidcSettings,
    input: { redirectUri: string; loginHint?: string },
  ): Promise<{ url: string; secrets: OidcSecrets }>;
  finish(
    key: OidcClientKey,
    settings: OidcSettings,
    input: { redirectUri: string; query: URLSearchParams; secrets: OidcSecrets },
  ): Promise<OidcIdentity>;
  evict(organizationId: string): void;
}

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60;

type Step = 'discovery' | 'grant' | 'userinfo';

export function createOidcClients(options: OidcClientsOptions): OidcClients {
  const timeoutSeconds = (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000;
  const clockTolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  const cache = new Map<string, { revision: number; configuration: Promise<client.Configuration> }>();

  function resolveConfiguration(key: OidcClientKey, settings: OidcSettings): Promise<client.Configuration> {
    const cached = cache.get(key.organizationId);
    if (cached?.revision === key.revision) return cached.configuration;
    const entry = { revision: key.revision, configuration: discover(settings) };
    cache.set(key.organizationId, entry);
    // A failed discovery must not stick: the next login retries instead of replaying the failure.
    entry.configuration.catch(() => {
      if (cache.get(key.organizationId) === entry) cache.delete(key.organizationId);
    });
    return entry.configuration;
  }

  async function discover(settings: OidcSettings): Promise<client.Configuration> {
    const issuer = parseUrl(settings.authority, 'authority');
    const auth =
      settings.clientAuthMethod === 'client_secret_basic'
        ? client.ClientSecretBasic(settings.clientSecret)
        : client.ClientSecretPost(settings.clientSecret);
    const execute = [client.enableNonRepudiationChecks];
    if (options.allowHttp) execute.push(client.allowInsecureRequests);
    try {
      return await client.discovery(
        issuer,
        settings.clientId,
        {
          id_token_signed_response_alg: settings.idTokenSignedResponseAlg ?? 'RS256',
          [client.clockTolerance]: clockTolerance,
        },
        auth,
        { timeout: timeoutSeconds, execute },
      );
    } catch (error) {
      throw classifyOidcFailure('discovery', error);
    }
  }

  return {
    async begin(key, settings, input) {
      const redirectUri = checkRedirectUri(input.redirectUri);
      const configuration = await resolveConfiguration(key, settings);
      const secrets: OidcSecrets = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        codeVerifier: client.randomPKCECodeVerifier(),
      };
      const parameters: Record<string, string> = {
        redirect_uri: redirectUri.href,
        scope: scopeOf(settings.scopes),
        state: secrets.state,
        nonce: secrets.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(secrets.codeVerifier),
        code_challenge_method: 'S256',
      };
      if (input.loginHint) parameters.login_hint = input.loginHint;
      try {
        return { url: client.buildAuthorizationUrl(configuration, parameters).href, secrets };
      } catch (error) {
        throw classifyOidcFailure('discovery', error);
      }
    },

    async finish(key, settings, input) {
      // openid-client sends this URL, stripped of its query, as redirect_uri: it comes from
      // PUBLIC_URL via the caller, never from the Host header (wrong behind a proxy, spoofable).
      const currentUrl = checkRedirectUri(input.redirectUri);
      currentUrl.search = input.query.toString();
      // Checked here rather than left to openid-client, whose state failure is indistinguishable
      // from other malformed responses. Before `error`: an unsolicited error is CSRF, not an IdP answer.
      const states = input.query.getAll('state');
      if (states.length !== 1 || !sameSecret(states[0]!, input.secrets.state)) {
        throw new SsoError('oidc.stateMismatch', 'The sign-in response does not belong to this sign-in attempt.');
      }
      const configuration = await resolveConfiguration(key, settings);

      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
      try {
        tokens = await client.authorizationCodeGrant(configuration, currentUrl, {
          pkceCodeVerifier: input.secrets.codeVerifier,
          expectedState: input.secrets.state,
          expectedNonce: input.secrets.nonce,
          idTokenExpected: true,
        });
      } catch (error) {
        throw classifyOidcFailure('grant', error);
      }
      const idToken = tokens.claims();
      if (!idToken) throw new SsoError('oidc.tokenInvalid', 'The identity provider returned no ID token.');

      let userinfo: Record<string, unknown> = {};
      // Conformant IdPs put email/name only in userinfo for the code flow (OIDC Core §5.4).
      if (configuration.serverMetadata().userinfo_endpoint) {
        try {
          userinfo = await client.fetchUserInfo(configuration, tokens.access_token, idToken.sub);
        } catch (error) {
          throw classifyOidcFailure('userinfo', error);
        }
      }
      return resolveIdentity({ ...userinfo, ...idToken }, idToken.iss, settings.claims);
    },

    evict(organizationId) {
      cache.delete(organizationId);
    },
  };
}

function resolveIdentity(
  claims: Record<string, unknown>,
  issuer: string,
  names: OidcSettings['claims'],
): OidcIdentity {
  const subject = claims[names.subject];
  if (typeof subject !== 'string' || subject === '') {
    throw new SsoError(
      'oidc.subjectMissing',
      `The identity provider sent no "${names.subject}" claim to identify the user.`,
    );
  }
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : null);
  return {
    issuer,
    subject,
    email: text(claims[names.email]),
    emailVerified: names.email === 'email' ? normalizeVerified(claims.email_verified) : null,
    name: text(claims[names.name]),
    claims,
  };
}

// Some IdPs (Cognito, older ADFS setups) send the boolean as a string.
function normalizeVerified(value: unknown): boolean | null {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return null;
}

// Without `openid` the IdP would answer plain OAuth: no ID token, nothing to verify.
function scopeOf(scopes: string[]): string {
  return [...new Set(['openid', ...scopes])].join(' ');
}

function checkRedirectUri(value: string): URL {
  const url = parseUrl(value, 'redirect URI');
  // openid-client derives redirect_uri by dropping the query, so one in the registered URI would be lost.
  if (url.search !== '' || url.hash !== '') {
    throw new SsoError('sso.invalidConfiguration', 'The OIDC redirect URI must not carry a query or fragment.');
  }
  return url;
}

function parseUrl(value: string, what: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new SsoError('sso.invalidConfiguration', `The OIDC ${what} is not a valid URL.`);
  }
}

function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

const DEFAULT_BY_STEP: Record<Step, [SsoErrorCode, string]> = {
  discovery: ['sso.idpUnavailable', 'The identity provider’s discovery document could not be used.'],
  grant: ['oidc.tokenInvalid', 'The identity provider’s ID token failed validation.'],
  userinfo: ['oidc.userinfoMismatch', 'The identity provider’s userinfo response was refused.'],
};

/**
 * Turns what openid-client throws into an SsoError. Messages are ours; the cause keeps only the
 * library's own fixed texts and codes, never response bodies, parameters or tokens (which the
 * library attaches and a logger would print).
 */
function classifyOidcFailure(step: Step, error: unknown): SsoError {
  if (error instanceof SsoError) return error;
  const fail = (code: SsoErrorCode, message: string) => new SsoError(code, message, { cause: summarize(error) });

  if (error instanceof client.AuthorizationResponseError) {
    return fail('oidc.idpError', `The identity provider refused the sign-in (${oauthCode(error.error)}).`);
  }
  // A token endpoint refusal arrives as a JSON body (client_secret_post) or, for HTTP Basic, as a
  // 401 challenge (RFC 6749 §5.2); invalid_client means our id/secret, anything else this grant.
  const refusal =
    error instanceof client.ResponseBodyError
      ? error.error
      : error instanceof client.WWWAuthenticateChallengeError
        ? error.cause.find((challenge) => challenge.parameters.error)?.parameters.error
        : undefined;
  if (refusal === 'invalid_client') {
    return fail('sso.invalidConfiguration', 'The identity provider rejected the client id or secret.');
  }
  if (error instanceof client.ResponseBodyError || error instanceof client.WWWAuthenticateChallengeError) {
    return fail('oidc.idpError', `The identity provider refused the request (${oauthCode(refusal)}).`);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_INVALID_ARG')) {
    return fail('sso.invalidConfiguration', 'The OIDC settings are not usable.');
  }
  // undici's "fetch failed": refused, reset, DNS, TLS.
  if (error instanceof TypeError) return fail('sso.idpUnavailable', 'The identity provider could not be reached.');

  switch (code) {
    case 'OAUTH_TIMEOUT':
    case 'OAUTH_ABORT':
      return fail('sso.idpUnavailable', 'The identity provider did not answer in time.');
    case 'OAUTH_HTTP_REQUEST_FORBIDDEN':
    case 'OAUTH_REQUEST_PROTOCOL_FORBIDDEN':
      return fail('sso.invalidConfiguration', 'The identity provider’s endpoints must use https.');
    case 'OAUTH_RESPONSE_IS_NOT_CONFORM':
    case 'OAUTH_RESPONSE_IS_NOT_JSON':
      return fail('sso.idpUnavailable', 'The identity provider answered with an unexpected response.');
    case 'OAUTH_MISSING_SERVER_METADATA':
    case 'OAUTH_INVALID_SERVER_METADATA':
      return fail('sso.invalidConfiguration', 'The identity provider’s discovery document lacks a required endpoint.');
    case 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED':
      if (step === 'discovery') {
        return fail('sso.invalidConfiguration', 'The discovered issuer does not match the configured authority.');
      }
      break;
    case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
    case 'OAUTH_INVALID_RESPONSE':
      if (step === 'grant' && aboutNonce(error)) {
        return fail('oidc.nonceMismatch', 'The ID token was not issued for this sign-in attempt.');
      }
      break;
  }
  const [fallback, message] = DEFAULT_BY_STEP[step];
  return fail(fallback, message);
}

// A wrong nonce is tagged `claim: 'nonce'`; a missing one only by oauth4webapi's fixed message
// 'JWT "nonce" (nonce) claim missing' (pinned version; the nonce tests guard the wording).
function aboutNonce(error: unknown): boolean {
  const inner = (error as { cause?: { message?: unknown; cause?: { claim?: unknown } } } | null)?.cause;
  return inner?.cause?.claim === 'nonce' || (typeof inner?.message === 'string' && inner.message.includes('"nonce"'));
}

// OAuth error codes are a registered vocabulary (RFC 6749 §4.1.2.1); anything else is not echoed.
function oauthCode(value: unknown): string {
  return typeof value === 'string' && /^[a-z_]{1,64}$/.test(value) ? value : 'unrecognised error';
}

function summarize(error: unknown): Error {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 3 && current instanceof Error; depth += 1) {
    const code = (current as { code?: unknown }).code;
    parts.push(`${current.name}${typeof code === 'string' ? ` ${code}` : ''}: ${current.message}`);
    current = current.cause;
  }
  return new Error(parts.join(' <- ') || 'unknown failure');
}
