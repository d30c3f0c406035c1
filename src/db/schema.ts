/**
 * Portico's storage schema. Every tenant table leads with `provider_id` or `organization_id`
 * so data can later be distributed by tenant. Invariants that races would break live here as
 * constraints (one member per email per organization, case-insensitive; one policy per type).
 */
import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull();
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull();

/** A person's account. Emails are stored lower-cased; uniqueness is enforced on lower(email). */
export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey(),
    email: text('email').notNull(),
    name: text('name'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('users_email_key').on(sql`lower(${t.email})`)],
);

/** Bearer tokens of people (personal API tokens). Only the SHA-256 of the secret is stored. */
export const apiTokens = pgTable(
  'api_tokens',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    tokenHash: text('token_hash').notNull(),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [uniqueIndex('api_tokens_hash_key').on(t.tokenHash), index('api_tokens_user_idx').on(t.userId)],
);

/** Process-independent settings, e.g. the hash of a generated operator token. */
export const systemSettings = pgTable('system_settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  createdAt: createdAt(),
});

export const providers = pgTable('providers', {
  id: uuid('id').primaryKey(),
  name: text('name').notNull(),
  businessName: text('business_name'),
  billingEmail: text('billing_email'),
  type: text('type').notNull().default('msp'),
  status: text('status').notNull(),
  enabled: boolean('enabled').notNull().default(true),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

export const providerUsers = pgTable(
  'provider_users',
  {
    providerId: uuid('provider_id')
      .notNull()
      .references(() => providers.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').references(() => users.id, { onDelete: 'set null' }),
    email: text('email').notNull(),
    type: text('type').notNull(),
    status: text('status').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('provider_users_provider_email_key').on(t.providerId, sql`lower(${t.email})`),
    index('provider_users_user_idx').on(t.userId),
  ],
);

export const organizations = pgTable(
  'organizations',
  {
    id: uuid('id').primaryKey(),
    providerId: uuid('provider_id').references(() => providers.id, { onDelete: 'set null' }),
    identifier: text('identifier').notNull(),
    name: text('name').notNull(),
    billingEmail: text('billing_email'),
    plan: text('plan').notNull(),
    seats: integer('seats').notNull(),
    /**
     * Seats in use (invited, accepted and confirmed members), kept by the engine under the
     * organization row lock so a seat check never counts the members.
     */
    seatsUsed: integer('seats_used').notNull().default(0),
    status: text('status').notNull(),
    enabled: boolean('enabled').notNull().default(true),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('organizations_identifier_key').on(sql`lower(${t.identifier})`),
    index('organizations_provider_idx').on(t.providerId),
  ],
);

export const members = pgTable(
  'members',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').references(() => users.id, { onDelete: 'set null' }),
    email: text('email').notNull(),
    /**
     * The SCIM `userName` (RFC 7643 §4.1.1), as sent: any non-empty string, not necessarily an
     * address (Entra sends the UPN, others `jsmith`). Null for members never given one, whose
     * userName is their email; the unique index is on that effective value.
     */
    userName: text('user_name'),
    name: text('name'),
    externalId: text('external_id'),
    role: text('role').notNull(),
    permissions: jsonb('permissions').$type<Record<string, boolean>>(),
    /**
     * Attributes a provisioning source keeps on the member (e.g. SCIM name parts); opaque to the rules.
     * SCIM `emails` stay here as sent (value, type, primary), not in a column of their own: the
     * profile is what SCIM renders back, so a second copy could only drift from it, and the
     * expression index below makes `emails[type eq "work"].value eq "x"` one indexed predicate.
     */
    profile: jsonb('profile').$type<Record<string, unknown>>(),
    status: text('status').notNull(),
    previousStatus: text('previous_status'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('members_org_email_key').on(t.organizationId, sql`lower(${t.email})`),
    uniqueIndex('members_org_external_id_key').on(t.organizationId, t.externalId),
    // What SCIM shows as userName is unique per organization, case-insensitively (idp-behaviour.md);
    // `userName eq` compiles to this very expression, so an IdP's lookup is an index scan.
    uniqueIndex('members_org_user_name_key').on(t.organizationId, sql`lower(coalesce(${t.userName}, ${t.email}))`),
    // The SCIM addresses, lower-cased (keys are already lower-case), for containment lookups by address.
    index('members_scim_emails_idx').using('gin', sql`(lower((${t.profile} -> 'emails')::text)::jsonb) jsonb_path_ops`),
    index('members_user_idx').on(t.userId),
    index('members_org_created_idx').on(t.organizationId, t.createdAt, t.id),
  ],
);

export const groups = pgTable(
  'groups',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    externalId: text('external_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('groups_org_idx').on(t.organizationId, t.createdAt, t.id),
    uniqueIndex('groups_org_external_id_key').on(t.organizationId, t.externalId),
    uniqueIndex('groups_org_name_key').on(t.organizationId, sql`lower(${t.name})`),
  ],
);

export const groupMembers = pgTable(
  'group_members',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    groupId: uuid('group_id')
      .notNull()
      .references(() => groups.id, { onDelete: 'cascade' }),
    memberId: uuid('member_id')
      .notNull()
      .references(() => members.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.memberId] }), index('group_members_member_idx').on(t.memberId)],
);

export const collections = pgTable(
  'collections',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    externalId: text('external_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('collections_org_idx').on(t.organizationId, t.createdAt, t.id),
    uniqueIndex('collections_org_external_id_key').on(t.organizationId, t.externalId),
  ],
);

/** A group's or member's access to a collection. A function: column builders must not be shared. */
const accessFlags = () => ({
  readOnly: boolean('read_only').notNull().default(false),
  hidePasswords: boolean('hide_passwords').notNull().default(false),
  manage: boolean('manage').notNull().default(false),
});

export const collectionGroups = pgTable(
  'collection_groups',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    collectionId: uuid('collection_id')
      .notNull()
      .references(() => collections.id, { onDelete: 'cascade' }),
    groupId: uuid('group_id')
      .notNull()
      .references(() => groups.id, { onDelete: 'cascade' }),
    ...accessFlags(),
  },
  (t) => [primaryKey({ columns: [t.collectionId, t.groupId] }), index('collection_groups_group_idx').on(t.groupId)],
);

export const collectionMembers = pgTable(
  'collection_members',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    collectionId: uuid('collection_id')
      .notNull()
      .references(() => collections.id, { onDelete: 'cascade' }),
    memberId: uuid('member_id')
      .notNull()
      .references(() => members.id, { onDelete: 'cascade' }),
    ...accessFlags(),
  },
  (t) => [
    primaryKey({ columns: [t.collectionId, t.memberId] }),
    index('collection_members_member_idx').on(t.memberId),
  ],
);

export const policies = pgTable(
  'policies',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    type: text('type').notNull(),
    enabled: boolean('enabled').notNull(),
    data: jsonb('data').$type<Record<string, unknown> | null>(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('policies_org_type_key').on(t.organizationId, t.type)],
);

/**
 * Mailed one-time tokens: provider setup, provider-user and member invitations.
 * Exactly one of provider_user_id / member_id is set for user invitations; setup invitations
 * carry only provider_id. Only the SHA-256 of the token is stored.
 */
export const invitations = pgTable(
  'invitations',
  {
    id: uuid('id').primaryKey(),
    kind: text('kind').notNull(),
    tokenHash: text('token_hash').notNull(),
    email: text('email').notNull(),
    providerId: uuid('provider_id').references(() => providers.id, { onDelete: 'cascade' }),
    providerUserId: uuid('provider_user_id').references(() => providerUsers.id, { onDelete: 'cascade' }),
    organizationId: uuid('organization_id').references(() => organizations.id, { onDelete: 'cascade' }),
    memberId: uuid('member_id').references(() => members.id, { onDelete: 'cascade' }),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('invitations_token_hash_key').on(t.tokenHash),
    // Reinvites replace a target's tokens and member deletes cascade here: both look up by target.
    index('invitations_member_idx').on(t.memberId),
    index('invitations_provider_user_idx').on(t.providerUserId),
  ],
);

export const events = pgTable(
  'events',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    id: uuid('id').notNull(),
    type: text('type').notNull(),
    // The reference platform's wire code, where the event type has one.
    code: integer('code'),
    date: timestamp('date', { withTimezone: true, mode: 'date' }).notNull(),
    actorUserId: uuid('actor_user_id'),
    actorProviderUserId: uuid('actor_provider_user_id'),
    actorSystem: text('actor_system'),
    providerId: uuid('provider_id'),
    organizationId: uuid('organization_id'),
    memberId: uuid('member_id'),
    providerUserId: uuid('provider_user_id'),
    groupId: uuid('group_id'),
    collectionId: uuid('collection_id'),
    policyId: uuid('policy_id'),
    ip: text('ip'),
  },
  (t) => [
    uniqueIndex('events_id_key').on(t.id),
    index('events_provider_date_idx').on(t.providerId, t.date, t.seq),
    index('events_org_date_idx').on(t.organizationId, t.date, t.seq),
  ],
);

/** An organization's SCIM endpoint: its bearer key, stored only as a hash; rotation replaces it at once. */
export const scimConfigs = pgTable('scim_configs', {
  organizationId: uuid('organization_id')
    .primaryKey()
    .references(() => organizations.id, { onDelete: 'cascade' }),
  tokenHash: text('token_hash').notNull(),
  enabled: boolean('enabled').notNull(),
  /**
   * The rights of the person who issued the key, which the key acts with: a key never carries more
   * than its issuer. Keys issued before this column existed are limited to admin rights.
   */
  issuerRole: text('issuer_role').notNull().default('admin'),
  issuerPermissions: jsonb('issuer_permissions').$type<Record<string, boolean>>(),
  /** Who issued the key (an event actor), for the record. */
  issuedBy: jsonb('issued_by').$type<Record<string, string>>(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** When a provider user last opened an organization's administration (one access event per hour). */
export const providerAccesses = pgTable(
  'provider_accesses',
  {
    providerId: uuid('provider_id')
      .notNull()
      .references(() => providers.id, { onDelete: 'cascade' }),
    providerUserId: uuid('provider_user_id')
      .notNull()
      .references(() => providerUsers.id, { onDelete: 'cascade' }),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    lastAt: timestamp('last_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.providerUserId, t.organizationId] })],
);

/**
 * Transactional outbox: a mail row is written in the same transaction as the change that causes it
 * and delivered later by the sender, so a rollback never sends and a crash never loses a mail.
 */
export const outbox = pgTable(
  'outbox',
  {
    id: uuid('id').primaryKey(),
    /** Writing order, for reading mails back newest first. */
    seq: bigserial('seq', { mode: 'number' }).notNull(),
    recipient: text('recipient').notNull(),
    subject: text('subject').notNull(),
    body: text('body').notNull(),
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull(),
    lastError: text('last_error'),
    loggedAt: timestamp('logged_at', { withTimezone: true, mode: 'date' }),
    sentAt: timestamp('sent_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (t) => [index('outbox_due_idx').on(t.status, t.nextAttemptAt)],
);

/**
 * Rate-limit counters every instance shares (failed authentications per client, mails per
 * recipient): a fixed window per key, restarted by the upsert once `expires_at` has passed.
 * Not a tenant table: keys name clients and addresses. Expired rows are pruned by a timer.
 */
export const rateLimits = pgTable(
  'rate_limits',
  {
    key: text('key').primaryKey(),
    points: integer('points').notNull(),
    /** Null: the key never expires (rate-limiter-flexible's duration 0). */
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('rate_limits_expires_idx').on(t.expiresAt)],
);

/**
 * An organization's directory connection (design.md, "Directory sync"). `config` is the PUT body
 * without the bind password, which is sealed with ENCRYPTION_KEY (context `directory:<org id>`) in
 * its own column. The schedule is copied into columns so the scheduler finds due organizations
 * without reading every document.
 */
export const directoryConfigs = pgTable('directory_configs', {
  organizationId: uuid('organization_id')
    .primaryKey()
    .references(() => organizations.id, { onDelete: 'cascade' }),
  config: jsonb('config').$type<Record<string, unknown>>().notNull(),
  bindPasswordSealed: text('bind_password_sealed').notNull(),
  /** A 5-field cron expression, or null. */
  scheduleCron: text('schedule_cron'),
  /** Minutes between scheduled runs (≥ 5), or null. */
  scheduleIntervalMinutes: integer('schedule_interval_minutes'),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/**
 * Directory sync runs: the history, and the lease that makes a run execute once across instances.
 * At most one run per organization is queued or running (a partial unique index), and a scheduled
 * slot (`scheduled_for`) is inserted once however many schedulers race for it.
 */
export const directoryRuns = pgTable(
  'directory_runs',
  {
    id: uuid('id').primaryKey(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    /** queued | running | succeeded | failed | guarded */
    status: text('status').notNull(),
    dryRun: boolean('dry_run').notNull().default(false),
    /** manual | schedule */
    trigger: text('trigger').notNull(),
    /** The schedule slot a scheduled run is for; null for manual runs (nulls never conflict). */
    scheduledFor: timestamp('scheduled_for', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
    counts: jsonb('counts').$type<Record<string, number>>(),
    progress: jsonb('progress').$type<Record<string, unknown>>(),
    problems: jsonb('problems').$type<unknown[]>(),
    changes: jsonb('changes').$type<unknown[]>(),
    message: text('message'),
    /** Why a read failed (`DirectoryReadFailure`: connect, tls, bind, search, limit, interrupted). */
    failure: text('failure'),
    /** The instance running it; with `lease_expires_at`, extended by its heartbeat. */
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    uniqueIndex('directory_runs_org_active_key').on(t.organizationId).where(sql`status in ('queued', 'running')`),
    uniqueIndex('directory_runs_org_slot_key').on(t.organizationId, t.scheduledFor),
    index('directory_runs_org_created_idx').on(t.organizationId, t.createdAt),
    index('directory_runs_active_idx').on(t.status).where(sql`status in ('queued', 'running')`),
  ],
);

/**
 * An organization's single sign-on (design.md, "SSO"). `config` is the PUT body as resolved by the
 * adapter (for SAML the IdP's entity id, SSO URL and certificates, read from its metadata when one
 * was given) without the OIDC client secret, which is sealed with ENCRYPTION_KEY (context
 * `sso:<org id>`) in its own column. `revision` grows on every change, so caches of protocol
 * objects keyed by it never serve a replaced configuration.
 */
export const ssoConfigs = pgTable('sso_configs', {
  organizationId: uuid('organization_id')
    .primaryKey()
    .references(() => organizations.id, { onDelete: 'cascade' }),
  enabled: boolean('enabled').notNull(),
  /** oidc | saml */
  kind: text('kind').notNull(),
  config: jsonb('config').$type<Record<string, unknown>>().notNull(),
  clientSecretSealed: text('client_secret_sealed'),
  revision: integer('revision').notNull().default(1),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/**
 * A sign-in in flight: server-side, single use, short-lived. It is found by the SHA-256 of its
 * opaque key (the OIDC `state`, the SAML RelayState); an OIDC one is also bound to the browser
 * that started it (the hash of a cookie). Protocol secrets (nonce, PKCE verifier) are sealed.
 */
export const ssoTransactions = pgTable(
  'sso_transactions',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    keyHash: text('key_hash').notNull(),
    kind: text('kind').notNull(),
    revision: integer('revision').notNull(),
    browserHash: text('browser_hash'),
    secretsSealed: text('secrets_sealed'),
    /** The SAML AuthnRequest ID a response must answer (InResponseTo). */
    requestId: text('request_id'),
    returnTo: text('return_to'),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [uniqueIndex('sso_transactions_key_hash_key').on(t.keyHash), index('sso_transactions_expires_idx').on(t.expiresAt)],
);

/** A member's identity at the organization's IdP: (issuer, subject) names one member, for good. */
export const ssoIdentities = pgTable(
  'sso_identities',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    memberId: uuid('member_id')
      .notNull()
      .references(() => members.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    lastSignInAt: timestamp('last_sign_in_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [
    uniqueIndex('sso_identities_subject_key').on(t.organizationId, t.issuer, t.subject),
    uniqueIndex('sso_identities_member_key').on(t.memberId),
  ],
);

/** SAML assertion IDs seen, until the assertion expires: a replay is refused on every instance. */
export const ssoReplays = pgTable(
  'sso_replays',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    assertionId: text('assertion_id').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.assertionId] }), index('sso_replays_expires_idx').on(t.expiresAt)],
);

/**
 * Session bearers issued by sign-in (SSO), scoped to the organization signed in to. The one-time
 * `code` a return URL carries is a session not yet handed out: it is exchanged once, within a
 * minute, for the session token. Only hashes are stored.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    organizationId: uuid('organization_id').references(() => organizations.id, { onDelete: 'cascade' }),
    /** sso */
    kind: text('kind').notNull(),
    tokenHash: text('token_hash'),
    codeHash: text('code_hash'),
    codeExpiresAt: timestamp('code_expires_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    uniqueIndex('sessions_token_hash_key').on(t.tokenHash),
    uniqueIndex('sessions_code_hash_key').on(t.codeHash),
    index('sessions_user_idx').on(t.userId),
    index('sessions_expires_idx').on(t.expiresAt),
  ],
);

/**
 * Domains an organization claims. A domain is verified by one organization at most (a partial
 * unique index), and claimed at most once by each.
 */
export const claimedDomains = pgTable(
  'claimed_domains',
  {
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    id: uuid('id').primaryKey(),
    /** Lower-case, without a trailing dot. */
    domain: text('domain').notNull(),
    txtValue: text('txt_value').notNull(),
    verifiedAt: timestamp('verified_at', { withTimezone: true, mode: 'date' }),
    lastCheckedAt: timestamp('last_checked_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('claimed_domains_org_domain_key').on(t.organizationId, t.domain),
    uniqueIndex('claimed_domains_verified_key').on(t.domain).where(sql`verified_at is not null`),
    index('claimed_domains_domain_idx').on(t.domain),
  ],
);
