/**
 * Why the configured database could not be opened, as one sentence an operator can act on: the
 * cause and the setting to change. Used by the composition roots (the server, the operator CLI),
 * which print it instead of a stack trace. Undefined when the error is not one of these: then it is
 * a bug, and its stack is what the reader needs.
 */
import { DataDirLocked } from './lock.js';

/** Errors of the file system that mean "this folder cannot be used by this user", not a bug. */
const FOLDER_CODES: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a path component is a file, not a folder',
  EEXIST: 'a file is in the way',
  ENOSPC: 'no space left on the device',
  EISDIR: 'a folder is where a file should be',
};

/** SQLSTATEs of a server that refused the login or the database (PostgreSQL Appendix A). */
const LOGIN_REFUSED = new Set(['28P01', '28000']);
const NO_DATABASE = '3D000';

export function describeOpenFailure(error: unknown, options: { databaseUrl?: string | undefined; dataDir: string }): string | undefined {
  if (error instanceof DataDirLocked) return error.message;
  const { code, message } = innermost(error);
  if (!options.databaseUrl) {
    if (code && FOLDER_CODES[code]) {
      return `The data folder ${options.dataDir} cannot be used (${code}: ${FOLDER_CODES[code]}); set DATA_DIR to a folder this user can read and write, or fix its permissions.`;
    }
    return undefined;
  }
  const target = describeUrl(options.databaseUrl);
  if (!target) return 'DATABASE_URL is not a valid URL; set it to postgres://user:password@host:5432/database.';
  if (code === 'CONNECT_TIMEOUT' || code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT') {
    return `PostgreSQL at ${target.host} does not answer (${code}); check the host and port in DATABASE_URL and that the server runs.`;
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return `The host of DATABASE_URL (${target.hostname}) cannot be resolved (${code}); fix the host in DATABASE_URL.`;
  }
  if (code && LOGIN_REFUSED.has(code)) {
    return `PostgreSQL at ${target.host} refused the login of user ${target.user} (${message}); fix the user or password in DATABASE_URL.`;
  }
  if (code === NO_DATABASE) {
    return `PostgreSQL at ${target.host} has no database ${target.database}; create it, or fix the database name in DATABASE_URL.`;
  }
  if (code && /^[0-9A-Z]{5}$/.test(code)) {
    return `PostgreSQL at ${target.host} refused to start Portico's session (${code}: ${message}); check DATABASE_URL and the server's log.`;
  }
  return undefined;
}

/** The innermost error with a code (drizzle wraps the driver's error in `cause`; a dual-stack connect reports an AggregateError). */
function innermost(error: unknown): { code?: string; message?: string } {
  let found: { code?: string; message?: string } = {};
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const e = current as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof e.code === 'string') found = { code: e.code, message: typeof e.message === 'string' ? e.message : '' };
    current = e.cause ?? (Array.isArray(e.errors) ? e.errors[0] : undefined);
  }
  return found;
}

/** Host, user and database of a PostgreSQL URL, never its password. */
function describeUrl(url: string): { host: string; hostname: string; user: string; database: string } | undefined {
  try {
    const parsed = new URL(url);
    return {
      host: `${parsed.hostname}:${parsed.port || '5432'}`,
      hostname: parsed.hostname,
      user: decodeURIComponent(parsed.username) || '(the current OS user)',
      database: decodeURIComponent(parsed.pathname.slice(1)) || '(named after the user)',
    };
  } catch {
    return undefined;
  }
}
