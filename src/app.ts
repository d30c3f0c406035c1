/**
 * The HTTP application, without listening: health, metrics, the OpenAPI document and /api/v1.
 * `main.ts` listens; tests drive this on port 0.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Database } from './db/index.js';
import { apiRoutes } from './http/api.routes.js';
import { limitJsonDepth, MAX_JSON_DEPTH } from './http/json-depth.js';
import { clientErrorStatus, UNDECODABLE } from './http/client-error.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { buildOpenApi } from './http/openapi.js';
import { problemFromDomainError, sendProblem, serviceUnavailable } from './http/problem.js';
import { createAuthThrottle, type AuthLimits, type AuthThrottle } from './http/rate-limit.js';
import { allowedMethods, type Route, type SsoAdmin } from './http/route.js';
import { httpSerializers, requestLogLevel, tenantOf } from './logging.js';
import { DomainError, isDatabaseUnavailable, Unauthenticated, type Engine, type Principal } from './membership/index.js';
import { createScimRouter, scimErrorHandler } from './scim/router.js';
import { createOidcClients } from './sso/oidc.js';
import { createSsoRouter } from './sso/router.js';
import { resolveSsoConfig } from './sso/settings.js';
import type { DirectorySync } from './sync/runner.js';

export interface AppDeps {
  engine: Engine;
  database: Pick<Database, 'ping'>;
  logger: Logger;
  publicUrl: string;
  bodyLimit: string;
  version?: string;
  metrics?: Metrics;
  /** Failed-authentication budgets (`src/http/rate-limit.ts`); absent: unlimited. */
  rateLimits?: AuthLimits | undefined;
  /**
   * Directory sync (src/sync/runner.ts): POST …/directory/sync starts the queued run in-process at
   * once (the lease keeps a scheduler from running it twice), POST …/directory/test reads through it.
   * Absent (benches, tests of other adapters): runs stay queued for a scheduler, and test fails.
   */
  directory?: Pick<DirectorySync, 'kick' | 'test'> | undefined;
  /** SSO_ALLOW_HTTP: IdP URLs may be plain http (local tests only). */
  ssoAllowHttp?: boolean | undefined;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export function createApp(deps: AppDeps) {
  const app = express();
  const metrics = deps.metrics ?? createMetrics();
  const openApi = buildOpenApi(apiRoutes, { serverUrl: deps.publicUrl, version: deps.version ?? '0.1.0' });

  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.set('query parser', 'simple');
  app.use(
    pinoHttp({
      logger: deps.logger,
      genReqId: (req, res) => {
        const incoming = req.headers['x-request-id'];
        const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      // One short line per request: req {id, method, URL with secret query values redacted}, res
      // {statusCode}, responseTime and the tenant of the path; probes at debug. Unwrapped, so each
      // serializer sees the raw object (and this child's `err` serializer is ours, not pino's default).
      wrapSerializers: false,
      customLogLevel: requestLogLevel,
      customProps: (req) => tenantOf(req),
      // Whatever made a 5xx was logged where it was caught (with the request bound); a second copy
      // here would only be pino-http's "failed with status code" stack.
      customErrorObject: (_req, _res, _error, fields: { res: unknown; responseTime: number }) => ({
        res: fields.res,
        responseTime: fields.responseTime,
      }),
      customErrorMessage: () => 'request failed',
      serializers: httpSerializers,
    }),
  );
  app.use((req, res, next) => {
    const stop = metrics.duration.startTimer();
    res.on('finish', () => {
      const routePath = (req.route as { path?: string } | undefined)?.path;
      // Route patterns only: a tenant id in a label would leak it and grow a series per organization.
      const base = req.baseUrl.replace(/^\/scim\/v2\/[^/]+/, '/scim/v2/:organizationId');
      const label = routePath ? `${base}${routePath}` : 'unmatched';
      metrics.requests.inc({ method: req.method, route: label, status: String(res.statusCode) });
      stop({ method: req.method, route: label });
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const ok = await deps.database.ping();
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'database unreachable' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  const api = express.Router();
  api.use(
    express.json({ limit: deps.bodyLimit, type: ['application/json', 'application/*+json'] }),
    limitJsonDepth((_req, res) =>
      sendProblem(res, { status: 400, code: 'request.invalid', detail: `The body nests deeper than ${MAX_JSON_DEPTH} levels` }),
    ),
  );
  api.get('/openapi.json', (_req, res) => {
    res.json(openApi);
  });
  const throttle = createAuthThrottle(deps.engine, deps.rateLimits);
  const oidc = createOidcClients({ allowHttp: deps.ssoAllowHttp ?? false });
  const sso: SsoAdmin = {
    resolveConfig: (body) => resolveSsoConfig(body, { allowHttp: deps.ssoAllowHttp ?? false }),
    evict: (organizationId) => oidc.evict(organizationId),
  };
  for (const r of apiRoutes) api[r.method](r.path, handler({ ...deps, sso }, r, throttle));
  const allowed = allowedMethods([{ method: 'get', path: '/openapi.json' }, ...apiRoutes]);
  api.use((req, res, next) => {
    // A known path asked with a method it does not take; unknown paths fall through to 404.
    const methods = allowed(req.path);
    if (!methods) return next();
    res.setHeader('Allow', methods.join(', '));
    sendProblem(res, {
      status: 405,
      code: 'method.not_allowed',
      detail: `${req.method} is not allowed on ${req.baseUrl}${req.path}; allowed: ${methods.join(', ')}`,
    });
  });
  api.use((req, res) => {
    sendProblem(res, { status: 404, code: 'route.not_found', detail: `No route ${req.method} ${req.baseUrl}${req.path}` });
  });
  app.use('/api/v1', api);
  app.use('/sso', createSsoRouter({ engine: deps.engine, publicUrl: deps.publicUrl, oidc, throttle: throttle.sso() }));
  app.use('/scim/v2/:organizationId', throttle.scim(), createScimRouter({ engine: deps.engine, publicUrl: deps.publicUrl, bodyLimit: deps.bodyLimit }));

  app.use((req, res) => {
    sendProblem(res, { status: 404, code: 'route.not_found', detail: `No route ${req.method} ${req.path}` });
  });
  app.use(errorHandler);
  return app;
}

const NO_DIRECTORY_SYNC: Pick<DirectorySync, 'kick' | 'test'> = {
  kick: () => {},
  test: () => Promise.reject(new Error('directory sync is not wired into this app')),
};

function handler(deps: Pick<AppDeps, 'engine' | 'directory'> & { sso: SsoAdmin }, r: Route, throttle: AuthThrottle) {
  const { engine, sso } = deps;
  const directory = deps.directory ?? NO_DIRECTORY_SYNC;
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      if (r.body && hasBody(req) && !req.is(['application/json', 'application/*+json'])) {
        return sendProblem(res, { status: 415, code: 'request.unsupported_media_type', detail: 'Send application/json' });
      }
      const principal = await throttle.authenticate(req, r, () => authenticateRequest(engine, req, r.auth));
      const body = r.body ? parseOrProblem(r.body, req.body, 'body') : undefined;
      const query = r.query ? parseOrProblem(r.query, req.query, 'query') : undefined;
      if (!r.query && Object.keys(req.query).length > 0) {
        throw new BadRequest('This route takes no query parameters', Object.keys(req.query).map((k) => ({ path: `query.${k}`, message: 'Unrecognized parameter' })));
      }
      const result = await throttle.redeem(req, r, () => r.handle({ engine, directory, sso, principal, params: req.params, body, query, req }));
      if (result === undefined || r.status === 204) return void res.status(204).end();
      res.status(r.status ?? 200).json(result);
    } catch (error) {
      next(error);
    }
  };
}

const hasBody = (req: Request) =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

async function authenticateRequest(engine: Engine, req: Request, auth: Route['auth']): Promise<Principal | undefined> {
  if (auth === 'none') return undefined;
  const header = req.headers.authorization;
  if (!header) {
    if (auth === 'optional') return undefined;
    throw new Unauthenticated();
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new Unauthenticated('Use Authorization: Bearer <token>');
  return engine.authenticate(match[1]!);
}

class BadRequest extends Error {
  constructor(
    readonly detail: string,
    readonly errors: { path: string; message: string }[],
  ) {
    super(detail);
  }
}

function parseOrProblem<T>(schema: import('zod').ZodType<T>, value: unknown, where: 'body' | 'query'): T {
  const parsed = schema.safeParse(value ?? (where === 'query' ? {} : undefined));
  if (parsed.success) return parsed.data;
  throw new BadRequest(
    `The request ${where} is invalid`,
    parsed.error.issues.flatMap((issue) => {
      const base = [where, ...issue.path.map(String)].join('.');
      if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ path: `${base}.${key}`, message: 'Unrecognized field' }));
      return [{ path: base, message: issue.message }];
    }),
  );
}

function errorHandler(error: unknown, req: Request, res: Response, next: NextFunction): void {
  // Once the answer has begun, express's own handler can only cut the connection.
  if (res.headersSent) return next(error);
  // What fails under /scim/ before its router answers (a malformed %-escape in :organizationId, the
  // throttle's database read) is answered in SCIM's format.
  if (req.originalUrl.startsWith('/scim/')) return scimErrorHandler(error, req, res, next);
  if (error instanceof DomainError) return sendProblem(res, problemFromDomainError(error));
  if (error instanceof BadRequest) {
    return sendProblem(res, { status: 400, code: 'request.invalid', detail: error.detail, errors: error.errors });
  }
  const bodyError = error as { type?: string; status?: number };
  if (bodyError.type === 'entity.parse.failed') {
    return sendProblem(res, { status: 400, code: 'request.malformed_json', detail: 'The body is not valid JSON' });
  }
  if (bodyError.type === 'entity.too.large') {
    return sendProblem(res, { status: 413, code: 'request.too_large', detail: 'The body is too large' });
  }
  if (bodyError.type === 'charset.unsupported' || bodyError.type === 'encoding.unsupported') {
    return sendProblem(res, { status: 415, code: 'request.unsupported_media_type', detail: 'Unsupported encoding' });
  }
  const clientStatus = clientErrorStatus(error);
  if (clientStatus !== undefined) {
    return sendProblem(res, { status: clientStatus, code: clientStatus === 400 ? 'request.malformed' : 'request.refused', detail: UNDECODABLE });
  }
  if (isDatabaseUnavailable(error)) {
    req.log.warn({ err: error }, 'request failed: the database is unavailable');
    return sendProblem(res, serviceUnavailable());
  }
  req.log.error({ err: error }, 'unhandled error');
  sendProblem(res, {
    status: 500,
    code: 'internal',
    detail: `Something went wrong; quote request id ${String(req.id)} when reporting it`,
  });
}
