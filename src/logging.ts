/**
 * The logger and its serializers. Log lines leave the process (shipped, indexed, kept for months)
 * and reach people the database does not, so no redeemable secret may be written to one: not a
 * mailed token in a request URL, not a bound SQL parameter of a failed query.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, stdSerializers, type DestinationStream, type Logger, type SerializedError } from 'pino';
import type { Config } from './config.js';

export const REDACTED = '[redacted]';

/**
 * The process logger: `LOG_LEVEL`, secret fields redacted wherever they are logged, and errors
 * serialized without their bound SQL parameters. `destination` defaults to stdout (tests pass a
 * stream to read the lines back): JSON lines, or pino-pretty's coloured single lines when stdout is
 * a terminal (`pretty` overrides the guess). Pretty printing runs as a pino transport, in a worker
 * thread, so a log store never receives anything but JSON.
 */
export function createLogger(
  config: Pick<Config, 'logLevel'>,
  destination?: DestinationStream,
  options: { pretty?: boolean } = {},
): Logger {
  const base = {
    level: config.logLevel,
    redact: ['*.token', '*.apiToken', '*.password', '*.secret'],
    serializers: { err: serializeError },
  };
  if (destination) return pino(base, destination);
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  return pretty ? pino({ ...base, transport: { target: 'pino-pretty', options: PRETTY } }) : pino(base);
}

/**
 * pino-pretty's options (plain data: they cross to the transport's worker thread). A request line
 * reads `12:00:01.234 INFO: GET /api/v1/me 200 4ms request completed (req 3f…)`.
 */
const PRETTY = {
  colorize: true,
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname,req,res,responseTime,component',
  messageFormat:
    '{if req.method}{req.method} {req.url} {end}{if res.statusCode}{res.statusCode} {responseTime}ms {end}' +
    '{if component}[{component}] {end}{msg}{if req.id} (req {req.id}){end}',
  singleLine: true,
};

/** Paths of the probes an orchestrator calls every few seconds: logged at debug, not info. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

const pathOf = (req: IncomingMessage) => {
  const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '';
  const end = url.search(/[?#]/);
  return end < 0 ? url : url.slice(0, end);
};

/**
 * The level of a request's line: probes at debug (a failing one shows in its status and in what
 * failed), 5xx at error, the rest at info.
 */
export function requestLogLevel(req: IncomingMessage, res: ServerResponse, err?: Error): 'debug' | 'info' | 'error' {
  if (PROBE_PATHS.has(pathOf(req))) return 'debug';
  return err || res.statusCode >= 500 ? 'error' : 'info';
}

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const ORGANIZATION_IN_PATH = new RegExp(`^/(?:api/v1/(?:organizations|providers/${UUID}/clients)|scim/v2)/(${UUID})(?:/|$)`);
const PROVIDER_IN_PATH = new RegExp(`^/api/v1/providers/(${UUID})(?:/|$)`);

/**
 * The tenant a request addresses, from its path: `organizationId` and/or `providerId`, so one
 * customer's requests can be found without reading URLs. Only id-shaped values count (a path
 * segment such as `setup` is no tenant).
 */
export function tenantOf(req: IncomingMessage): { organizationId?: string; providerId?: string } {
  const path = pathOf(req);
  const organizationId = ORGANIZATION_IN_PATH.exec(path)?.[1];
  const providerId = PROVIDER_IN_PATH.exec(path)?.[1];
  return { ...(providerId ? { providerId } : {}), ...(organizationId ? { organizationId } : {}) };
}

/**
 * Serializers for pino-http (with `wrapSerializers: false`: each receives the raw object). pino-http
 * builds its request logger as a child with its own serializers, which would otherwise replace the
 * logger's `err` serializer for `req.log.error({ err })`.
 */
export const httpSerializers = {
  req: serializeRequest,
  res: serializeResponse,
  err: serializeError,
};

/**
 * Query parameters whose value may be a secret, by name: mailed links carry `token`, SSO returns
 * carry a one-time `code`, IdPs post `SAMLResponse`/`RelayState`, and anything else that says key,
 * secret, password or signature. A false positive only hides a harmless value.
 */
const SECRET_PARAM = /token|code|key|secret|passw|pwd|sig|auth|session|credential|assertion|saml|relaystate|ticket|otp|nonce|state/i;

/** `url` with the value of each secret-looking query parameter replaced by `[redacted]`. */
export function redactUrl(url: string): string {
  const start = url.indexOf('?');
  if (start < 0) return url;
  const end = url.indexOf('#', start);
  const query = url.slice(start + 1, end < 0 ? undefined : end);
  const redacted = query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      const name = pair.slice(0, eq);
      return SECRET_PARAM.test(decodeName(name)) ? `${name}=${REDACTED}` : pair;
    })
    .join('&');
  return `${url.slice(0, start + 1)}${redacted}${end < 0 ? '' : url.slice(end)}`;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * A request in a log line: its id, method and URL (secret query values redacted), nothing more.
 * Headers stay out: they are long, and carry credentials and, in a Referer, mailed links.
 */
export function serializeRequest(req: IncomingMessage) {
  const { id, method, url } = stdSerializers.req(req);
  return { id, method, url: redactUrl(url) };
}

/** A response in a log line: its status, and a redirect's Location with secret query values redacted. */
export function serializeResponse(res: ServerResponse) {
  // An SSO return redirects to `returnTo?code=<one-time code>`.
  const location = res.getHeader('location');
  return { statusCode: res.headersSent ? res.statusCode : null, ...(typeof location === 'string' ? { location: redactUrl(location) } : {}) };
}

/**
 * Properties of an error (or of one in its `cause` chain) that hold bound values: drizzle's
 * DrizzleQueryError and PGlite's errors carry `params`, postgres.js `parameters` and `args`, PGlite
 * `queryOptions`; Postgres echoes row values in `detail` (`Key (email)=(…) already exists`,
 * `Failing row contains (…)`). The SQL text (`query`) stays: its values are all bound, never inline.
 */
const BOUND_VALUE_FIELDS = new Set(['params', 'parameters', 'args', 'queryOptions', 'detail']);

/**
 * Bound values shorter than this are not searched for in messages and stacks: they are words
 * ("member", "pending") that would garble file paths and text, and too short to identify anyone or
 * to redeem anything. (DrizzleQueryError's `params:` line goes whole, whatever its values' lengths.)
 */
const MIN_REDACTED_VALUE = 7;

type ErrorLike = Error & Record<string, unknown>;

const isErrorLike = (value: unknown): value is ErrorLike =>
  typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';

/**
 * The `err` serializer: pino's standard one over a copy of the error whose `cause` chain lost every
 * bound SQL parameter, whether as a field, in DrizzleQueryError's message (`Failed query: …\nparams:
 * …`) or echoed by Postgres in a message (`invalid input syntax for type uuid: "…"`).
 */
export function serializeError(error: unknown): SerializedError {
  if (!isErrorLike(error)) return error as SerializedError;
  return stdSerializers.err(scrubError(error, boundValues(error), new Map()));
}

/** Every bound value in the chain, as text, longest first (so a value inside another goes after it). */
function boundValues(error: ErrorLike): string[] {
  const values = new Set<string>();
  const seen = new Set<unknown>();
  for (let e: unknown = error; isErrorLike(e) && !seen.has(e); e = e.cause) {
    seen.add(e);
    for (const field of ['params', 'parameters', 'args']) {
      const list = e[field];
      if (!Array.isArray(list)) continue;
      for (const value of list) {
        const text = valueText(value);
        if (text !== undefined && text.length >= MIN_REDACTED_VALUE) values.add(text);
      }
    }
  }
  return [...values].sort((a, b) => b.length - a.length);
}

function valueText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  if (value && typeof value === 'object') {
    try {
      return JSON.stringify(value);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** A copy of `error` (same prototype, so the same `type`) without bound values; `cause` and `errors` scrubbed too. */
function scrubError(error: ErrorLike, values: string[], seen: Map<object, Error>): Error {
  const done = seen.get(error);
  if (done) return done;
  const copy = Object.create(Object.getPrototypeOf(error) as object) as ErrorLike;
  seen.set(error, copy);
  const scrub = (value: unknown): unknown => {
    if (isErrorLike(value)) return scrubError(value, values, seen);
    return typeof value === 'string' ? scrubText(error, value, values) : value;
  };
  for (const key of Object.keys(error)) {
    if (BOUND_VALUE_FIELDS.has(key)) continue;
    copy[key] = key === 'query' ? error[key] : scrub(error[key]);
  }
  // Non-enumerable on native errors; pino's serializer reads them by name.
  const hidden = (value: unknown) => ({ value, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(copy, 'message', hidden(scrub(error.message)));
  if (typeof error.stack === 'string') Object.defineProperty(copy, 'stack', hidden(scrub(error.stack)));
  if (!Object.keys(error).includes('cause') && isErrorLike(error.cause)) {
    Object.defineProperty(copy, 'cause', hidden(scrub(error.cause)));
  }
  if (Array.isArray(error.errors)) Object.defineProperty(copy, 'errors', hidden(error.errors.map(scrub)));
  return copy;
}

/**
 * `text` without bound values: DrizzleQueryError's closing `\nparams: ${params}` line goes whole, and
 * each value is replaced wherever it appears, except inside the error's own SQL text (its values are
 * bound, and a replaced word would garble it).
 */
function scrubText(error: ErrorLike, text: string, values: string[]): string {
  const params = error.params;
  const lines = Array.isArray(params) ? text.split(`\nparams: ${params.join(',')}`).join(`\nparams: ${REDACTED}`) : text;
  const query = typeof error.query === 'string' && error.query !== '' ? error.query : undefined;
  const redact = (part: string) => values.reduce((t, value) => t.split(value).join(REDACTED), part);
  return query ? lines.split(query).map(redact).join(query) : redact(lines);
}
