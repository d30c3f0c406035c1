/**
 * Domain errors: named after the condition, with a stable `code` and a message safe to show.
 * Nothing protocol-specific lives here; each adapter maps `code` to its own protocol.
 */
export class DomainError extends Error {
  readonly code: string;
  readonly details: unknown;

  constructor(code: string, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }
}

export const define = (code: string, defaultMessage: string) =>
  class extends DomainError {
    static readonly code = code;
    constructor(message = defaultMessage, options: { details?: unknown; cause?: unknown } = {}) {
      super(code, message, options);
    }
  };

// Lookups (adapters answer "not found": another tenant's ids look exactly like missing ones).
export class ProviderNotFound extends define('provider.not_found', 'Provider not found') {}
export class ProviderUserNotFound extends define('provider_user.not_found', 'Provider user not found') {}
export class OrganizationNotFound extends define('organization.not_found', 'Organization not found') {}
export class MemberNotFound extends define('member.not_found', 'Member not found') {}
export class GroupNotFound extends define('group.not_found', 'Group not found') {}
export class CollectionNotFound extends define('collection.not_found', 'Collection not found') {}
export class TokenNotFound extends define('token.not_found', 'Token not found') {}

// Authentication and authorisation.
export class Unauthenticated extends define('auth.unauthenticated', 'A valid bearer token is required') {}
export class PermissionDenied extends define('auth.permission_denied', 'You are not allowed to do this') {}
/** The requireSso policy of an organization the person belongs to: sessions come from its SSO only. */
export class SsoRequired extends define('auth.sso_required', 'This account signs in through its organization’s SSO') {}
export class OwnerRequired extends define('member.owner_required', 'Only owners may manage owners') {}
export class SelfActionRefused extends define('member.self_action', 'Nobody may do this to themselves') {}

// Invitations.
export class InvitationInvalid extends define('invitation.invalid', 'The invitation token is invalid, used or expired') {}
export class InvitationEmailMismatch extends define(
  'invitation.email_mismatch',
  'The invitation was sent to another email address',
) {}

// State rules.
export class InvalidStatus extends define('status.invalid', 'The current status does not allow this') {}
export class SeatLimitReached extends define('organization.seat_limit', 'The organization has no free seats') {}
export class LastOwnerRequired extends define(
  'organization.last_owner',
  'The organization must keep at least one confirmed owner',
) {}
export class LastAdminRequired extends define(
  'provider.last_admin',
  'The provider must keep at least one confirmed Provider Admin',
) {}
export class PlanFeatureMissing extends define('organization.plan_feature', "The organization's plan lacks this feature") {}
export class OrganizationDisabled extends define('organization.disabled', 'The organization is disabled') {}
export class ProviderDisabled extends define('provider.disabled', 'The provider is disabled') {}
export class PolicyViolation extends define('policy.violation', 'A policy of the organization forbids this') {}
export class PolicyDependency extends define('policy.dependency', 'A policy this one depends on is in the way') {}
export class Conflict extends define('conflict', 'The value is already taken') {}
export class InvalidInput extends define('input.invalid', 'The input is invalid') {}

// Throttling: `details.retryAfter` is the number of seconds until the window passes.
export class RateLimited extends define('rate.limited', 'Too many attempts; try again later') {
  /** Seconds until the window passes. */
  readonly retryAfter: number;
  constructor(retryAfter: number, message?: string) {
    super(message, { details: { retryAfter } });
    this.retryAfter = retryAfter;
  }
}
export class MailRateLimited extends RateLimited {
  constructor(retryAfter: number) {
    super(retryAfter, 'Too many mails to this address within the hour; try again later');
  }
}
