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
 * stream to read the lines back).
 */
export function createLogger(config: Pick<Config, 'logLevel'>, destination?: DestinationStream): Logger {
  const options = {
    level: config.logLevel,
    redact: ['*.token', '*.apiToken', '*.password', '*.secret'],
    serializers: { err: serializeError },
  };
  return destination ? pino(options, destination) : pino(options);
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

/** The request as pino-std-serializers renders it, with secret query values redacted in the URL, the parsed query and the Referer. */
export function serializeRequest(req: IncomingMessage) {
  const serialized = stdSerializers.req(req);
  serialized.url = redactUrl(serialized.url);
  const query: unknown = serialized.query;
  if (query && typeof query === 'object') {
    serialized.query = Object.fromEntries(
      Object.entries(query).map(([name, value]) => [name, SECRET_PARAM.test(name) ? REDACTED : value]),
    );
  }
  // A page opened from a mailed link sends that link as the Referer of its next requests.
  const referer = serialized.headers.referer;
  if (typeof referer === 'string') serialized.headers = { ...serialized.headers, referer: redactUrl(referer) };
  return serialized;
}

/** The response as pino-std-serializers renders it, with secret query values redacted in a redirect's Location. */
export function serializeResponse(res: ServerResponse) {
  const serialized = stdSerializers.res(res);
  // An SSO return redirects to `returnTo?code=<one-time code>`.
  const location = serialized.headers.location;
  if (typeof location === 'string') serialized.headers = { ...serialized.headers, location: redactUrl(location) };
  return serialized;
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
