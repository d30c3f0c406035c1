/**
 * SCIM errors (RFC 7644 §3.12): the one mapping from domain error codes to SCIM status and
 * scimType. Bodies are built by scimmy's Error message; `status` is a string, as the RFC says.
 */
import SCIMMY from 'scimmy';
import { DomainError } from '../membership/index.js';

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
};

/** Turns anything thrown while serving SCIM into a status and body; unknown errors are 500 with no detail. */
export function renderScimError(error: unknown): { status: number; body: unknown } | undefined {
  let status: number;
  let scimType: ScimType | undefined;
  let detail: string;
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
  } else {
    return undefined;
  }
  const body = new SCIMMY.Messages.Error(new SCIMMY.Types.Error(status, scimType ?? '', detail)) as unknown as Record<string, unknown>;
  if (!scimType) delete body.scimType;
  return { status, body };
}
