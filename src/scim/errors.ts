/**
 * SCIM errors (RFC 7644 §3.12): the one mapping from domain error codes to SCIM status and
 * scimType, and the Error body; `status` is a string, as the RFC says.
 */
import SCIMMY from 'scimmy';
import { DATABASE_RETRY_AFTER_SECONDS, DomainError, isDatabaseUnavailable, RateLimited } from '../membership/index.js';

export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

/** An error raised by the SCIM adapter itself. */
export class ScimError extends Error {
  constructor(
    readonly status: number,
    readonly scimType: ScimType | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ScimError';
  }
}

const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

const BY_CODE: Record<string, [number, ScimType | undefined]> = {
  conflict: [409, 'uniqueness'],
  'input.invalid': [400, 'invalidValue'],
  'filter.invalid': [400, 'invalidFilter'],
  'auth.unauthenticated': [401, undefined],
  'auth.permission_denied': [403, undefined],
  'organization.seat_limit': [403, undefined],
  'organization.plan_feature': [403, undefined],
  'organization.disabled': [403, undefined],
  'policy.violation': [403, undefined],
  'organization.last_owner': [409, undefined],
  'status.invalid': [409, undefined],
  'member.owner_required': [403, undefined],
  'rate.limited': [429, undefined],
};

export interface RenderedScimError {
  status: number;
  body: { schemas: string[]; status: string; scimType?: ScimType; detail: string };
  /** Seconds for the Retry-After header of a 503 or a 429 (RFC 9110 §10.2.3). */
  retryAfter?: number;
  /** True for an error nothing here recognises: a bug, which the caller logs in full. */
  unexpected: boolean;
}

/**
 * Turns anything thrown while serving SCIM into a status and body. A database out of reach is 503
 * with Retry-After: the IdP retries later, as Entra and Okta do for 5xx (idp-behaviour.md). Anything
 * else unrecognised is a 500 whose detail is `internalDetail`: its own text never reaches a client.
 */
export function renderScimError(error: unknown, internalDetail = 'Something went wrong'): RenderedScimError {
  let status: number;
  let scimType: ScimType | undefined;
  let detail: string;
  let unexpected = false;
  if (error instanceof ScimError) {
    ({ status, scimType } = error);
    detail = error.message;
  } else if (error instanceof DomainError) {
    [status, scimType] = error.code.endsWith('.not_found') ? [404, undefined] : (BY_CODE[error.code] ?? [400, 'invalidValue']);
    detail = error.message;
  } else if (error instanceof SCIMMY.Types.Error) {
    status = error.status;
    scimType = error.scimType as ScimType | undefined;
    detail = error.message;
  } else if (isDatabaseUnavailable(error)) {
    [status, scimType] = [503, undefined];
    detail = 'The service is unavailable for a moment; retry later';
  } else {
    [status, scimType, unexpected] = [500, undefined, true];
    detail = internalDetail;
  }
  // Built here, not by scimmy's Error message: that throws for statuses outside its table (415 for a
  // non-JSON body) and for 400 `tooMany` (RFC 7644 §3.12 lists tooMany under 400), and a throw here
  // would turn a client error into a 500.
  const body = { schemas: [ERROR_SCHEMA], status: String(status), ...(scimType ? { scimType } : {}), detail };
  if (error instanceof RateLimited) return { status, body, unexpected, retryAfter: error.retryAfter };
  return { status, body, unexpected, ...(status === 503 ? { retryAfter: DATABASE_RETRY_AFTER_SECONDS } : {}) };
}
