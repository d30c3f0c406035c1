/**
 * The one answer to "did this fail because the database is out of reach?" for both drivers. Such a
 * failure is the dependency's, not the request's: adapters answer 503 with a Retry-After, and the
 * same request may succeed once the pool has reconnected (postgres.js does so by itself).
 */

/** Seconds a client is asked to wait after an outage: about the pool's longest reconnect backoff (see index.ts). */
export const DATABASE_RETRY_AFTER_SECONDS = 2;

/** Socket errors of Node's net module while connecting to or talking with the server. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** postgres.js's own codes for a connection that closed, ended, was destroyed or never opened. */
const DRIVER_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT']);

/**
 * SQLSTATEs (PostgreSQL Appendix A) of a server that is going away or not taking work: 57P01
 * admin_shutdown (also what `pg_terminate_backend` sends), 57P02 crash_shutdown, 57P03
 * cannot_connect_now (starting up or in recovery), 53300 too_many_connections; class 08 is
 * "connection exception" as a whole.
 */
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * PGlite runs in this process and has no connection to lose; it refuses work only once it is
 * closing or closed (during shutdown), and says so in the message alone (0.5.16: no code).
 */
const PGLITE_CLOSED = /^PGlite is clos(ing|ed)$/;

/**
 * Whether `error` (or an error it wraps: drizzle puts the driver's error in `cause`, and Node's
 * dual-stack connect reports an AggregateError) means the database could not be reached or dropped
 * the connection, rather than refusing the statement.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0) {
    const e = pending.pop();
    if (!e || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const { code, message, cause, errors } = e as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === 'string') {
      if (SOCKET_CODES.has(code) || DRIVER_CODES.has(code) || SQLSTATES.has(code)) return true;
      if (/^08[0-9A-Z]{3}$/.test(code)) return true;
    }
    if (typeof message === 'string' && PGLITE_CLOSED.test(message)) return true;
    pending.push(cause);
    if (Array.isArray(errors)) pending.push(...(errors as unknown[]));
  }
  return false;
}
