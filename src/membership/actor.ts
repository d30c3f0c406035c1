import type { ProviderUserId, UserId } from './ids.js';

export type SystemActorName = 'scim' | 'directorySync' | 'domainVerification' | 'api';

/** Who did something, as the event log records it. */
export type Actor =
  | { userId: UserId }
  | { providerUserId: ProviderUserId; userId: UserId }
  | { system: SystemActorName };

/** Who a bearer token belongs to, before any tenant is resolved. */
export type Principal = { kind: 'system' } | { kind: 'user'; userId: UserId };

