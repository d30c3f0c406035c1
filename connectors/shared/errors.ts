/**
 * Every failure of a read becomes one `DirectoryReadError` whose kind and message an administrator
 * can act on. ldapts reports LDAP result codes as `ResultCodeError`s (RFC 4511 §4.1.9) and socket
 * trouble as plain Errors; both are classified here, in one place.
 */
import { ResultCodeError } from 'ldapts';
import { DirectoryReadError, type DirectoryReadFailure } from '../../src/sync/source.js';

/** What the connector was doing when the error came. */
export type ReadPhase = 'connect' | 'tls' | 'bind' | 'read';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
const INTERRUPT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

// RFC 4511 result codes.
const SIZE_LIMIT = 4;
const TIME_LIMIT = 3;
const ADMIN_LIMIT = 11;
const STRONG_AUTH_REQUIRED = 8;
const CONFIDENTIALITY_REQUIRED = 13;
const INAPPROPRIATE_AUTH = 48;
const INVALID_CREDENTIALS = 49;
const INSUFFICIENT_ACCESS = 50;
const NO_SUCH_OBJECT = 32;
const BUSY = 51;
const UNAVAILABLE = 52;

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isTlsError(error: unknown): boolean {
  const code = codeOf(error) ?? '';
  const message = error instanceof Error ? error.message : '';
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code) ||
    /certificate|SSL routines|TLS/i.test(message)
  );
}

function describe(error: unknown): string {
  if (error instanceof ResultCodeError) return `${error.message} (LDAP result ${error.code})`;
  if (error instanceof Error) return codeOf(error) ? `${error.message} [${codeOf(error)}]` : error.message;
  return String(error);
}

/** Removes the bind password from a message, whatever produced it. */
export function redact(message: string, secret: string | undefined): string {
  return secret ? message.split(secret).join('***') : message;
}

export interface ReadErrorContext {
  phase: ReadPhase;
  url: string;
  bindDn: string;
  bindPassword: string;
  /** What was being searched, for the message: `users under ou=People,dc=example,dc=test`. */
  target?: string;
}

/** The kind and actionable message of a failure. */
export function toReadError(error: unknown, context: ReadErrorContext): DirectoryReadError {
  if (error instanceof DirectoryReadError) return error;
  const [failure, message] = classify(error, context);
  return new DirectoryReadError(failure, redact(`${message}: ${describe(error)}`, context.bindPassword), { cause: error });
}

const TLS_HINT = (url: string) =>
  `the TLS handshake with ${url} failed: give the CA that signed the server's certificate in tls.ca, and connect by a host name the certificate names`;

function classify(error: unknown, { phase, url, bindDn, target }: ReadErrorContext): [DirectoryReadFailure, string] {
  const code = codeOf(error);
  if (error instanceof ResultCodeError) {
    switch (error.code) {
      case INVALID_CREDENTIALS:
        return ['bind', `${url} refused the bind of "${bindDn}": check the bind DN and password`];
      case INAPPROPRIATE_AUTH:
        return ['bind', `${url} does not allow a simple bind for "${bindDn}" (anonymous or no password?)`];
      case STRONG_AUTH_REQUIRED:
      case CONFIDENTIALITY_REQUIRED:
        return phase === 'bind' || phase === 'connect'
          ? ['bind', `${url} requires an encrypted connection for binds: use ldaps:// or tls.startTls`]
          : ['search', `${url} requires stronger authentication to search ${target ?? ''}`];
      case SIZE_LIMIT:
      case ADMIN_LIMIT:
        return [
          'limit',
          `${url} cut the read of ${target ?? 'the directory'} short at a size limit: raise the limits of "${bindDn}" or lower pageSize (paging must be allowed)`,
        ];
      case TIME_LIMIT:
        return ['limit', `${url} stopped the read of ${target ?? 'the directory'} at its time limit: raise timeLimitSeconds or narrow the filter`];
      case BUSY:
      case UNAVAILABLE:
        return phase === 'read'
          ? ['interrupted', `${url} became unavailable while reading ${target ?? 'the directory'}`]
          : ['connect', `${url} is unavailable or busy`];
      case NO_SUCH_OBJECT:
        return ['search', `the base DN of ${target ?? 'the search'} does not exist on ${url}: check baseDn`];
      case INSUFFICIENT_ACCESS:
        return ['search', `"${bindDn}" may not read ${target ?? 'the directory'} on ${url}: grant it read access`];
      default:
        if (phase === 'tls') return ['tls', `${url} refused StartTLS`];
        if (phase === 'bind' || phase === 'connect') return ['bind', `${url} refused the bind of "${bindDn}"`];
        return ['search', `${url} refused the search of ${target ?? 'the directory'}: check baseDn and filter`];
    }
  }
  if (isTlsError(error)) return ['tls', TLS_HINT(url)];
  if (code && CONNECT_CODES.has(code)) {
    return phase === 'read'
      ? ['interrupted', `the connection to ${url} was lost while reading ${target ?? 'the directory'}`]
      : ['connect', `${url} could not be reached: check the host, the port and the firewall`];
  }
  if (phase === 'tls') return ['tls', TLS_HINT(url)];
  if (code && INTERRUPT_CODES.has(code)) {
    return phase === 'read' || phase === 'bind'
      ? ['interrupted', `the connection to ${url} was reset while reading ${target ?? 'the directory'}`]
      : ['connect', `${url} closed the connection`];
  }
  const message = error instanceof Error ? error.message : '';
  if (/Connection closed|Socket connection not established|Socket error|Operation timed out/i.test(message)) {
    return phase === 'connect' || phase === 'bind'
      ? ['connect', `${url} closed the connection before answering (wrong port, or ldaps:// against a plain LDAP port?)`]
      : ['interrupted', `the connection to ${url} was lost while reading ${target ?? 'the directory'}`];
  }
  if (/filter/i.test(message)) return ['search', `the filter of ${target ?? 'the search'} is not a valid LDAP filter`];
  if (phase === 'read') return ['interrupted', `the read of ${target ?? 'the directory'} from ${url} failed`];
  return ['connect', `could not connect to ${url}`];
}
