/**
 * RFC 9457 problem details: the one mapping from domain error codes to HTTP. A database out of
 * reach is 503 `service.unavailable`; anything else that is not a DomainError becomes a generic
 * 500, and its text never reaches the client.
 */
import type { Response } from 'express';
import { DATABASE_RETRY_AFTER_SECONDS, DomainError, RateLimited } from '../membership/index.js';

const STATUS_BY_CODE: Record<string, number> = {
  'auth.unauthenticated': 401,
  'auth.permission_denied': 403,
  'auth.sso_required': 403,
  'sso.refused': 403,
  'sso.code_invalid': 400,
  'sso.transaction_return_url': 400,
  'member.owner_required': 403,
  'member.self_action': 403,
  'organization.plan_feature': 403,
  'organization.disabled': 403,
  'provider.disabled': 403,
  'policy.violation': 403,
  'invitation.email_mismatch': 403,
  'invitation.invalid': 400,
  'input.invalid': 400,
  'status.invalid': 409,
  'organization.seat_limit': 409,
  'organization.last_owner': 409,
  'provider.last_admin': 409,
  'policy.dependency': 409,
  conflict: 409,
  'rate.limited': 429,
};

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface Problem {
  status: number;
  code: string;
  detail: string;
  errors?: unknown;
  /** Seconds, sent as `Retry-After` (RFC 9110 §10.2.3). */
  retryAfter?: number;
}

export function statusOf(error: DomainError): number {
  if (error.code.endsWith('.not_found')) return 404;
  return STATUS_BY_CODE[error.code] ?? 400;
}

export function problemFromDomainError(error: DomainError): Problem {
  const problem: Problem = { status: statusOf(error), code: error.code, detail: error.message };
  if (error instanceof RateLimited) problem.retryAfter = error.retryAfter;
  else if (error.details !== undefined) problem.errors = error.details;
  return problem;
}

/** The database is out of reach: this request failed, and the same one may succeed in a moment. */
export function serviceUnavailable(): Problem {
  return {
    status: 503,
    code: 'service.unavailable',
    detail: 'The service is unavailable for a moment; retry later',
    retryAfter: DATABASE_RETRY_AFTER_SECONDS,
  };
}

export function sendProblem(res: Response, problem: Problem): void {
  if (problem.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  if (problem.retryAfter !== undefined) res.setHeader('Retry-After', String(problem.retryAfter));
  res
    .status(problem.status)
    .type('application/problem+json')
    .send(
      JSON.stringify({
        type: `urn:portico:problem:${problem.code}`,
        title: TITLES[problem.status] ?? 'Error',
        status: problem.status,
        detail: problem.detail,
        code: problem.code,
        ...(problem.errors !== undefined ? { errors: problem.errors } : {}),
      }),
    );
}
