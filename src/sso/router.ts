/**
 * The /sso routes (design.md, "SSO"): start a sign-in by organization identifier or by an email
 * whose domain an organization verified, finish it at the OIDC callback or the SAML ACS, and serve
 * the SP metadata. The protocol checks are oidc.ts's and saml.ts's; the transaction, the replay
 * cache, the membership and the session are the engine's. A failure answers a page for a browser
 * or problem+json for an API client, with a reference that is in the log line — never a 500, a
 * stack trace, or a redirect to a URL off the organization's list.
 */
import { randomBytes } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import {
  DomainError,
  isDatabaseUnavailable,
  RateLimited,
  SsoSignInRefused,
  SsoTransactionInvalid,
  type Engine,
  type SignInResult,
  type SsoSettings,
} from '../membership/index.js';
import { SsoError } from './errors.js';
import type { OidcClients, OidcSecrets, OidcSettings } from './oidc.js';
import { autoPostPage, errorPage, loginPage } from './pages.js';
import { createSamlServiceProvider, type SamlServiceProvider, type SamlSettings } from './saml.js';

/** The ACS takes one form field of base64 XML: real responses stay far below this. */
export const ACS_BODY_LIMIT = '256kb';
/** Allowed difference between the IdP's clock and ours. */
export const CLOCK_SKEW_SECONDS = 120;
const BROWSER_COOKIE = 'portico_sso_browser';
const TRANSIENT_NAMEID = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';
const BROWSER_KEY = /^[\w-]{43}$/;

export interface SsoRouterDeps {
  engine: Engine;
  publicUrl: string;
  oidc: OidcClients;
  /** In front of the OIDC callback and the SAML ACS: the failed-response budget of a client. */
  throttle: RequestHandler;
}

interface Failure {
  status: number;
  code: string;
  message: string;
}

export function createSsoRouter(deps: SsoRouterDeps) {
  const router = express.Router();
  const secureCookies = deps.publicUrl.startsWith('https:');
  const samlProviders = new Map<string, { revision: number; sp: SamlServiceProvider }>();

  const samlProvider = (settings: SsoSettings): SamlServiceProvider => {
    const cached = samlProviders.get(settings.organizationId);
    if (cached?.revision === settings.revision) return cached.sp;
    const sp = createSamlServiceProvider(samlSettings(settings));
    samlProviders.set(settings.organizationId, { revision: settings.revision, sp });
    return sp;
  };

  const settingsOf = async (identifier: string | undefined): Promise<SsoSettings> => {
    const settings = identifier ? await deps.engine.signIn.settings(identifier) : undefined;
    if (!settings) throw new SsoError('sso.notConfigured', 'This organization does not sign in with SSO');
    return settings;
  };

  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  // The page where a person starts; `login` (or `email`) routes by a verified domain, else by identifier.
  router.get('/login', async (req, res, next) => {
    try {
      const login = String(req.query.login ?? req.query.email ?? req.query.identifier ?? '').trim();
      if (!login) return loginPage(res);
      const identifier = login.includes('@') ? await deps.engine.signIn.organizationOfEmail(login) : login;
      const settings = identifier ? await deps.engine.signIn.settings(identifier) : undefined;
      if (!settings) {
        return loginPage(res, {
          status: 404,
          value: login,
          error: login.includes('@')
            ? 'No organization signs in with SSO for this email domain. Try your organization identifier.'
            : 'No organization with this identifier signs in with SSO.',
        });
      }
      const target = new URL(settings.serviceProvider.loginUrl);
      if (login.includes('@')) target.searchParams.set('login_hint', login);
      if (typeof req.query.returnTo === 'string') target.searchParams.set('returnTo', req.query.returnTo);
      res.redirect(302, target.pathname + target.search);
    } catch (error) {
      next(error);
    }
  });

  router.get('/:identifier/login', async (req, res, next) => {
    try {
      const settings = await settingsOf(req.params.identifier);
      const returnTo = typeof req.query.returnTo === 'string' ? req.query.returnTo : undefined;
      const loginHint = typeof req.query.login_hint === 'string' ? req.query.login_hint.slice(0, 256) : undefined;
      if (settings.kind === 'oidc') {
        const browserKey = browserKeyOf(req) ?? randomBytes(32).toString('base64url');
        const started = await deps.engine.signIn.begin(settings, { returnTo, browserKey }, async (key) => {
          const { url, secrets } = await deps.oidc.begin(oidcKey(settings), oidcSettings(settings), {
            redirectUri: settings.serviceProvider.oidcRedirectUri,
            ...(loginHint ? { loginHint } : {}),
          });
          // The transaction's key is the state; the IdP's URL carries it.
          const target = new URL(url);
          target.searchParams.set('state', key);
          return { url: target.href, secrets: { nonce: secrets.nonce, codeVerifier: secrets.codeVerifier } };
        });
        res.cookie(BROWSER_COOKIE, browserKey, { httpOnly: true, secure: secureCookies, sameSite: 'lax', path: '/sso' });
        return res.redirect(302, started.url);
      }
      const sp = samlProvider(settings);
      const started = await deps.engine.signIn.begin(settings, { returnTo }, async (key) => {
        const request = sp.createLoginRequest(key);
        return { requestId: request.requestId, request };
      });
      if (started.request.form) return autoPostPage(res, started.request.form.action, started.request.form.fields);
      res.redirect(302, started.request.redirectUrl!);
    } catch (error) {
      next(error);
    }
  });

  router.get('/oidc/:identifier/callback', deps.throttle, async (req, res, next) => {
    try {
      const settings = await settingsOf(req.params.identifier);
      if (settings.kind !== 'oidc') throw new SsoError('sso.notConfigured', 'This organization does not sign in with OIDC');
      const query = new URLSearchParams(req.url.slice(req.url.indexOf('?') + 1 || req.url.length));
      const state = query.get('state');
      if (!state) throw new SsoError('oidc.stateMismatch', 'The identity provider’s answer carries no state');
      const taken = await deps.engine.signIn.take({
        key: state,
        organizationId: settings.organizationId,
        kind: 'oidc',
        browserKey: browserKeyOf(req),
      });
      const secrets: OidcSecrets = { state, nonce: taken.secrets.nonce!, codeVerifier: taken.secrets.codeVerifier! };
      const identity = await deps.oidc.finish(oidcKey(settings), oidcSettings(settings), {
        redirectUri: settings.serviceProvider.oidcRedirectUri,
        query,
        secrets,
      });
      const result = await deps.engine.signIn.complete(
        settings,
        { issuer: identity.issuer, subject: identity.subject, email: identity.email, emailVerified: identity.emailVerified, name: identity.name },
        { returnTo: taken.returnTo },
      );
      respond(res, result);
    } catch (error) {
      next(error);
    }
  });

  router.get('/saml/:identifier/metadata', async (req, res, next) => {
    try {
      const settings = await settingsOf(req.params.identifier);
      if (settings.kind !== 'saml') throw new SsoError('sso.notConfigured', 'This organization does not sign in with SAML');
      res.type('application/samlmetadata+xml').send(samlProvider(settings).metadata());
    } catch (error) {
      next(error);
    }
  });

  router.post('/saml/:identifier/acs', deps.throttle, express.urlencoded({ extended: false, limit: ACS_BODY_LIMIT, parameterLimit: 10 }), async (req, res, next) => {
    try {
      const settings = await settingsOf(req.params.identifier);
      if (settings.kind !== 'saml') throw new SsoError('sso.notConfigured', 'This organization does not sign in with SAML');
      const body = (req.body ?? {}) as Record<string, unknown>;
      const samlResponse = body.SAMLResponse;
      if (typeof samlResponse !== 'string' || samlResponse.length === 0) {
        throw new SsoError('saml.malformed', 'The request carries no SAMLResponse');
      }
      const relayState = typeof body.RelayState === 'string' ? body.RelayState : undefined;
      // Our RelayState is the key of a transaction; anything else (or none) makes the response unsolicited.
      const taken = relayState?.startsWith('st_')
        ? await deps.engine.signIn.take({ key: relayState, organizationId: settings.organizationId, kind: 'saml' })
        : undefined;
      const identity = await samlProvider(settings).validateResponse(
        { SAMLResponse: samlResponse, ...(relayState ? { RelayState: relayState } : {}) },
        { requestId: taken?.requestId ?? null },
      );
      if (identity.nameIdFormat === TRANSIENT_NAMEID) {
        throw new SsoError(
          'saml.subjectMissing',
          'The identity provider sends a transient NameID, which names nobody twice; configure a persistent or email NameID',
        );
      }
      if (!(await deps.engine.signIn.rememberAssertion(settings.organizationId, identity.assertionId, identity.notOnOrAfter))) {
        throw new SsoError('saml.replay', 'This assertion was already used');
      }
      const result = await deps.engine.signIn.complete(
        settings,
        { issuer: identity.issuer, subject: identity.nameId, email: identity.email, name: identity.name },
        { returnTo: taken?.returnTo ?? null },
      );
      respond(res, result);
    } catch (error) {
      next(error);
    }
  });

  router.use((_req, _res, next) => next(new SsoError('sso.notConfigured', 'There is no such SSO page')));
  router.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const failure = classify(error);
    const reference = String(req.id);
    if (error instanceof RateLimited) res.set('Retry-After', String(error.retryAfter));
    const log = failure.status >= 500 ? req.log.error.bind(req.log) : req.log.warn.bind(req.log);
    log({ reference, sso: { code: failure.code, identifier: req.params.identifier }, err: error }, 'SSO sign-in failed');
    if (req.accepts(['json', 'html']) === 'html') return errorPage(res, failure.status, failure.message, reference);
    res
      .status(failure.status)
      .type('application/problem+json')
      .send(
        JSON.stringify({
          type: `urn:portico:problem:${failure.code}`,
          title: 'Sign-in failed',
          status: failure.status,
          detail: failure.message,
          code: failure.code,
          reference,
        }),
      );
  });
  return router;
}

function respond(res: Response, result: SignInResult): void {
  if (result.kind === 'code') {
    const target = new URL(result.returnTo);
    target.searchParams.set('code', result.code);
    return res.redirect(302, target.href);
  }
  res.json({ token: result.token, user: result.user, organizationId: result.organizationId, expiresAt: result.expiresAt });
}

function classify(error: unknown): Failure {
  if (error instanceof SsoError) {
    const status = error.code === 'sso.notConfigured' ? 404 : error.code === 'sso.idpUnavailable' ? 502 : 400;
    return { status, code: error.code, message: error.message };
  }
  if (error instanceof SsoSignInRefused) return { status: 403, code: `sso.${error.reason}`, message: error.message };
  if (error instanceof SsoTransactionInvalid) return { status: 400, code: error.code, message: error.message };
  if (error instanceof RateLimited) return { status: 429, code: error.code, message: 'Too many failed sign-ins from here; try again later' };
  if (error instanceof DomainError) return { status: 403, code: error.code, message: error.message };
  if (isDatabaseUnavailable(error)) {
    return { status: 503, code: 'service.unavailable', message: 'The service is unavailable for a moment; try again shortly' };
  }
  const parse = error as { type?: unknown; status?: unknown };
  if (parse.type === 'entity.too.large') return { status: 413, code: 'saml.malformed', message: 'The SAML response is too large' };
  if (typeof parse.status === 'number' && parse.status >= 400 && parse.status < 500) {
    return { status: 400, code: 'sso.malformed', message: 'The request cannot be read' };
  }
  return { status: 400, code: 'sso.failed', message: 'The sign-in could not be completed' };
}

function browserKeyOf(req: Request): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, value] = part.trim().split('=');
    if (name === BROWSER_COOKIE && value && BROWSER_KEY.test(value)) return value;
  }
  return undefined;
}

const oidcKey = (settings: SsoSettings) => ({ organizationId: settings.organizationId, revision: settings.revision });

function oidcSettings(settings: SsoSettings): OidcSettings {
  const oidc = settings.oidc!;
  return {
    authority: oidc.authority,
    clientId: oidc.clientId,
    clientSecret: oidc.clientSecret,
    clientAuthMethod: oidc.clientAuthMethod,
    scopes: oidc.scopes,
    claims: oidc.claims,
  };
}

function samlSettings(settings: SsoSettings): SamlSettings {
  const saml = settings.saml!;
  return {
    spEntityId: settings.serviceProvider.samlEntityId,
    acsUrl: settings.serviceProvider.samlAcsUrl,
    idp: { entityId: saml.idpEntityId, ssoUrl: saml.idpSsoUrl, certificates: saml.idpCertificates },
    binding: saml.binding,
    allowUnsolicited: saml.allowUnsolicited,
    wantAssertionsSigned: saml.wantAssertionsSigned,
    minSignatureAlgorithm: saml.minSignatureAlgorithm,
    ...(saml.nameIdFormat ? { nameIdFormat: saml.nameIdFormat } : {}),
    clockSkewSeconds: CLOCK_SKEW_SECONDS,
  };
}
