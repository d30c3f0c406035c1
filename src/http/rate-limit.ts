/**
 * Throttling of failed authentications: bearer tokens on /api/v1, SCIM keys, invitation and
 * provider-setup tokens. Each client (its socket address; `trust proxy` is off) may fail a given
 * number of times per kind within a window, and a SCIM endpoint a given number of times across
 * all clients. Past that every attempt answers 429 with `Retry-After`, correct credentials
 * included, until the window passes: a guesser learns nothing more. Only failures count; the
 * budget is checked before each attempt. The counters live in the database (the engine's rate
 * limiters), so every instance sharing it shares the budget.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { DomainError, RateLimited, retryAfterSeconds, type Engine, type RateLimiter } from '../membership/index.js';
import type { Route } from './route.js';

export interface AuthLimits {
  /** Failed attempts one client may make per kind of credential within the window; 0: unlimited. */
  authFailuresPerClient: number;
  /** Failed SCIM-key attempts on one organization's endpoint, from any client; 0: unlimited. */
  scimFailuresPerOrganization: number;
  authWindowSeconds: number;
}

export type CredentialKind = 'bearer' | 'scimKey' | 'invitation' | 'setup' | 'sso';

/** The /api/v1 routes that redeem a mailed token from the body, and the kind they count. */
const TOKEN_ROUTES: Record<string, CredentialKind> = {
  'post /invitations/accept': 'invitation',
  'post /providers/setup': 'setup',
};

interface Subject {
  limiter: RateLimiter;
  key: string;
}

export interface AuthThrottle {
  /** Runs a route's bearer authentication, refused while the client has no failures left. */
  authenticate<T>(req: Request, route: Route, attempt: () => Promise<T>): Promise<T>;
  /** Runs a route's handler; on a route redeeming a mailed token, throttled like `authenticate`. */
  redeem<T>(req: Request, route: Route, attempt: () => Promise<T>): Promise<T>;
  /**
   * Middleware in front of the SCIM router (mounted on `/scim/v2/:organizationId`): checks the
   * client's and the organization's budgets and counts every 401 the router answers. A spent
   * budget goes on as a `RateLimited` error, which the SCIM error handler answers.
   */
  scim(): RequestHandler;
  /** Middleware in front of the SSO callback and ACS: a client's IdP answers that fail validation (400) are counted. */
  sso(): RequestHandler;
}

export function createAuthThrottle(engine: Engine, limits: AuthLimits | undefined): AuthThrottle {
  const perClient = (kind: CredentialKind) =>
    limits && limits.authFailuresPerClient > 0
      ? engine.rateLimiter({ keyPrefix: `auth:${kind}`, points: limits.authFailuresPerClient, duration: limits.authWindowSeconds })
      : undefined;
  const clients = {
    bearer: perClient('bearer'),
    scimKey: perClient('scimKey'),
    invitation: perClient('invitation'),
    setup: perClient('setup'),
    sso: perClient('sso'),
  };
  const perOrganization =
    limits && limits.scimFailuresPerOrganization > 0
      ? engine.rateLimiter({ keyPrefix: 'auth:scimOrganization', points: limits.scimFailuresPerOrganization, duration: limits.authWindowSeconds })
      : undefined;

  const subjectsOf = (kind: CredentialKind, req: Request): Subject[] => {
    const subjects: Subject[] = [];
    const client = clients[kind];
    if (client) subjects.push({ limiter: client, key: clientKey(req.ip) });
    const organizationId = req.params.organizationId;
    // Only ids that can name an organization: any other path segment fails anyway, and would
    // otherwise make a counter per string a client invents.
    if (kind === 'scimKey' && perOrganization && organizationId && UUID.test(organizationId)) {
      subjects.push({ limiter: perOrganization, key: organizationId.toLowerCase() });
    }
    return subjects;
  };

  /** Throws `RateLimited` (retry after the latest window to pass) when any subject's budget is spent. */
  const check = async (subjects: Subject[]): Promise<void> => {
    const spent = (await Promise.all(subjects.map(async (s) => ({ s, res: await s.limiter.get(s.key) })))).filter(
      ({ s, res }) => res !== null && res.consumedPoints >= s.limiter.points,
    );
    if (spent.length > 0) throw new RateLimited(Math.max(...spent.map(({ res }) => retryAfterSeconds(res!.msBeforeNext))));
  };
  const recordFailure = async (subjects: Subject[]): Promise<void> => {
    await Promise.all(subjects.map((s) => s.limiter.penalty(s.key)));
  };

  /**
   * Middleware that checks the request's budgets, then counts the answer when `failed(status)`.
   * A spent budget goes on as a `RateLimited` error, for the router's error handler to answer.
   */
  const countingFailures =
    (subjectsFor: (req: Request) => Subject[], failed: (status: number) => boolean, what: string): RequestHandler =>
    (req: Request, res: Response, next: NextFunction) => {
      const subjects = subjectsFor(req);
      if (subjects.length === 0) return next();
      check(subjects).then(
        () => {
          // The failure is counted before the answer leaves: counted on 'finish', a client's next
          // attempt could be checked before this one was recorded.
          const end = res.end;
          res.end = function (this: Response, ...args: unknown[]) {
            res.end = end;
            const finish = () => (end as (...a: unknown[]) => Response).apply(this, args);
            if (!failed(res.statusCode)) return finish();
            recordFailure(subjects).then(finish, (error: unknown) => {
              req.log?.error({ err: error }, `recording ${what} failed`);
              finish();
            });
            return this;
          } as Response['end'];
          next();
        },
        (error: unknown) => next(error),
      );
    };

  const guard = async <T>(subjects: Subject[], attempt: () => Promise<T>, failed: (error: unknown) => boolean): Promise<T> => {
    if (subjects.length === 0) return attempt();
    await check(subjects);
    try {
      return await attempt();
    } catch (error) {
      if (failed(error)) await recordFailure(subjects);
      throw error;
    }
  };

  return {
    authenticate: (req, route, attempt) =>
      // Only a presented credential is a guess; a request without one is simply refused.
      route.auth === 'none' || req.headers.authorization === undefined
        ? attempt()
        : guard(subjectsOf('bearer', req), attempt, hasCode('auth.unauthenticated')),

    redeem: (req, route, attempt) => {
      const kind = TOKEN_ROUTES[`${route.method} ${route.path}`];
      return kind ? guard(subjectsOf(kind, req), attempt, hasCode('invitation.invalid')) : attempt();
    },

    scim: () =>
      countingFailures(
        (req) => (req.headers.authorization === undefined ? [] : subjectsOf('scimKey', req)),
        (status) => status === 401,
        'a failed SCIM authentication',
      ),
    // An IdP answer that fails validation (400) is a guess at a forged or replayed one; a valid
    // answer for someone refused (403) is not.
    sso: () => countingFailures((req) => subjectsOf('sso', req), (status) => status === 400, 'a failed SSO response'),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const hasCode = (code: string) => (error: unknown) => error instanceof DomainError && error.code === code;

/**
 * The budget key of a client address: IPv4 as is (also when IPv4-mapped), IPv6 by its /64, which
 * one host or household usually holds whole.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const bare = address.split('%')[0]!;
  const [head = '', tail] = bare.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
