import type { OrganizationId, ProviderUserId, UserId } from './ids.js';

export type SystemActorName = 'scim' | 'directorySync' | 'domainVerification' | 'api' | 'sso';

/** Who did something, as the event log records it. */
export type Actor =
  | { userId: UserId }
  | { providerUserId: ProviderUserId; userId: UserId }
  | { system: SystemActorName };

/**
 * Who a bearer token belongs to, before any tenant is resolved. A session signed in through an
 * organization's SSO carries that organization: it acts there, as the member, and nowhere else.
 */
export type Principal = { kind: 'system' } | { kind: 'user'; userId: UserId; organizationId?: OrganizationId };

