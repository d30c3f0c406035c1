/** The membership engine's public surface: adapters import from here only. */
export { createEngine, type Engine, type OrganizationHandle, type ProviderHandle } from './engine.js';
export type { Actor, Principal, SystemActorName } from './actor.js';
export type { EngineDeps } from './context.js';
export { MAIL_WINDOW_SECONDS, retryAfterSeconds, type RateLimiter, type RateLimitOptions } from './rate-limits.js';
export * from './errors.js';
/** Whether a failure is the database's being out of reach (adapters answer 503), and how long to ask clients to wait. */
export { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../db/index.js';
export { EVENT_CODES, EVENT_PAGE_SIZE, type Event, type EventType } from './events.js';
export type { CollectionAccess, Member } from './members.js';
export type { Group } from './groups.js';
export type { Collection } from './collections.js';
export type { Policy } from './policies.js';
export type { Organization, Provider, ProviderUser } from './providers.js';
export { PROVIDER_USER_TYPES, PROVIDER_INVITE_BATCH } from './providers.js';
export {
  MEMBER_STATUSES,
  PERMISSION_FLAGS,
  PLANS,
  ROLES,
  type MemberStatus,
  type Permissions,
  type Plan,
  type Role,
} from './members.rules.js';
export { POLICY_TYPES, type PolicyType } from './policies.rules.js';
export {
  FilterInvalid,
  type EmailAttribute,
  type Filter,
  type FilterOperator,
  type FilterValue,
  type GroupAttribute,
  type GroupSummary,
  type MemberAttribute,
  type Page,
  type SearchResult,
} from './search.js';
export type { ScimStatus } from './scim-keys.js';
export { isStorableDate, isStorableText, unstorablePaths } from './storable.js';
export { createMailQueue, redactTokens, type MailQueue, type QueuedMail } from './outbox.js';
export {
  DirectoryNotConfigured,
  type DirectoryConfig,
  type DirectoryConfigInput,
  type DirectoryConnection,
  type DirectorySchedule,
} from './directory-config.js';
export {
  createDirectoryWorker,
  DIRECTORY_LEASE_MS,
  DIRECTORY_RUN_COUNTS,
  DIRECTORY_RUN_STATUSES,
  DirectoryRunNotFound,
  type DirectoryRun,
  type DirectoryRunCounts,
  type DirectoryRunResult,
  type DirectoryRunStatus,
  type DirectoryRunTrigger,
  type DirectoryScheduleEntry,
  type DirectoryWorker,
} from './directory-runs.js';
export {
  DIRECTORY_CHANGE_ORDER,
  isMailableAddress,
  type BatchOutcome,
  type DirectoryChange,
  type DirectoryChangeKind,
  type DirectoryGroupState,
  type DirectoryMemberState,
  type DirectoryProblemCode,
  type DirectoryState,
  type DirectorySyncHandle,
  type RefusedChange,
} from './directory-sync.js';
export {
  serviceProviderInfo,
  SsoNotConfigured,
  type OidcConfig,
  type SamlConfig,
  type ServiceProviderInfo,
  type SsoConfig,
  type SsoConfigInput,
  type SsoKind,
  type SsoSettings,
} from './sso-config.js';
export {
  SSO_CODE_TTL_MS,
  SSO_SESSION_TTL_MS,
  SSO_TRANSACTION_TTL_MS,
  SsoCodeInvalid,
  SsoSignInRefused,
  SsoTransactionInvalid,
  type SignInResult,
  type SsoRefusalReason,
  type TakenTransaction,
  type VerifiedIdentity,
} from './sso-signin.js';
export { DomainNotFound, normalizeDomain, type ClaimedDomain, type TxtResolver } from './domains.js';
