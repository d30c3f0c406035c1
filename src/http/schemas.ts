/**
 * Schemas of /api/v1. Request schemas are strict, so unknown fields and wrong types answer 400 with
 * every path. Response schemas (at the end) describe what the engine's views render as JSON; they
 * feed the OpenAPI document, and test/http/openapi-responses.test.ts parses real answers with them.
 */
import { validate as isCronExpression } from 'node-cron';
import { z } from 'zod';
import { directoryConfigSchema, MIN_INTERVAL_MINUTES } from '../sync/settings.js';
import {
  DIRECTORY_RUN_COUNTS,
  DIRECTORY_RUN_STATUSES,
  EVENT_CODES,
  isStorableText,
  MEMBER_STATUSES,
  PERMISSION_FLAGS,
  PLANS,
  POLICY_TYPES,
  PROVIDER_INVITE_BATCH,
  PROVIDER_USER_TYPES,
  ROLES,
} from '../membership/index.js';

/**
 * Every free string of the API: text PostgreSQL can store as given. Its text cannot hold NUL, and an
 * unpaired surrogate has no UTF-8 form (the drivers would store U+FFFD; jsonb refuses it), so
 * either is a 400 here rather than a failed query. The engine's rule is src/membership/storable.ts.
 * (`email` needs none: its format admits ASCII only.)
 */
const text = () => z.string().refine(isStorableText, 'must not contain NUL or an unpaired surrogate');

export const email = z.email().max(254);
const name = text().trim().min(1).max(200);
const externalId = text().min(1).max(300);
const token = text().min(1).max(200);

export const permissions = z.strictObject(
  Object.fromEntries(PERMISSION_FLAGS.map((flag) => [flag, z.boolean().optional()])) as Record<
    (typeof PERMISSION_FLAGS)[number],
    z.ZodOptional<z.ZodBoolean>
  >,
);

export const collectionAccess = z.strictObject({
  id: text().max(64),
  readOnly: z.boolean().default(false),
  hidePasswords: z.boolean().default(false),
  manage: z.boolean().default(false),
});

const ids = z.array(text().max(64)).max(10_000);

export const createProvider = z.strictObject({ name, adminEmail: email });
export const providerSetup = z.strictObject({ token, name: name.optional(), billingEmail: email.optional() });
export const updateProvider = z
  .strictObject({
    name: name.optional(),
    businessName: name.nullable().optional(),
    billingEmail: email.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'Give at least one field to change');
export const acceptInvitation = z.strictObject({ token, name: name.optional() });

export const inviteProviderUsers = z.strictObject({
  emails: z.array(email).min(1).max(PROVIDER_INVITE_BATCH),
  type: z.enum(PROVIDER_USER_TYPES),
});
export const updateProviderUser = z.strictObject({ type: z.enum(PROVIDER_USER_TYPES) });

export const createClient = z.strictObject({
  name,
  plan: z.enum(PLANS),
  seats: z.number().int().min(0).max(1_000_000),
  ownerEmail: email.optional(),
  identifier: text().min(1).max(50).optional(),
  collectionName: name.optional(),
});
export const updateClient = z
  .strictObject({ name: name.optional(), seats: z.number().int().min(0).max(1_000_000).optional() })
  .refine((v) => v.name !== undefined || v.seats !== undefined, 'Give name or seats');

export const inviteMembers = z.strictObject({
  emails: z.array(email).min(1).max(20),
  role: z.enum(ROLES),
  permissions: permissions.optional(),
  groups: ids.optional(),
  collections: z.array(collectionAccess).max(1_000).optional(),
});
export const updateMember = z
  .strictObject({
    role: z.enum(ROLES).optional(),
    permissions: permissions.nullable().optional(),
    groups: ids.optional(),
    collections: z.array(collectionAccess).max(1_000).optional(),
    name: name.nullable().optional(),
    externalId: externalId.nullable().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'Give at least one field to change');

export const createGroup = z.strictObject({
  name,
  externalId: externalId.nullable().optional(),
  members: ids.optional(),
  collections: z.array(collectionAccess).max(1_000).optional(),
});
export const updateGroup = createGroup
  .partial()
  .refine((v) => Object.keys(v).length > 0, 'Give at least one field to change');

export const createCollection = z.strictObject({ name, externalId: externalId.nullable().optional() });
export const updateCollection = createCollection
  .partial()
  .refine((v) => Object.keys(v).length > 0, 'Give at least one field to change');

export const putPolicy = z.strictObject({ enabled: z.boolean(), data: z.unknown().optional() });

export const createToken = z.strictObject({ name });

// Date.parse alone is lenient (it reads 2026-02-30 as 2 March) and reads a date-time without a zone
// in the server's zone; only real calendar dates, and date-times with Z or an offset, are accepted.
const isoDate = z
  .union([z.iso.date(), z.iso.datetime({ offset: true })], {
    error: 'must be an ISO 8601 date (YYYY-MM-DD) or a date-time with Z or an offset',
  })
  .transform((s) => new Date(s));

export const eventQuery = z.strictObject({
  start: isoDate.optional(),
  end: isoDate.optional(),
  continuationToken: text().max(500).optional(),
});

export const memberQuery = z.strictObject({
  status: z.enum(MEMBER_STATUSES).optional(),
  email: text().max(254).optional(),
  continuationToken: text().max(500).optional(),
});

export const outboxQuery = z.strictObject({ recipient: text().max(254).optional() });

/** Every string of a value, with its path: the directory document is stored as jsonb, which holds no NUL. */
function* stringsOf(value: unknown, path: (string | number)[] = []): Generator<[string, (string | number)[]]> {
  if (typeof value === 'string') yield [value, path];
  else if (Array.isArray(value)) for (const [i, item] of value.entries()) yield* stringsOf(item, [...path, i]);
  else if (value && typeof value === 'object') for (const [k, item] of Object.entries(value)) yield* stringsOf(item, [...path, k]);
}

/**
 * A directory schedule: a 5-field cron expression (minute hour day-of-month month day-of-week,
 * evaluated in UTC; checked with node-cron's validate) or an interval of at least 5 minutes.
 */
const directorySchedule = z
  .strictObject({
    cron: z
      .string()
      .min(9)
      .max(120)
      .refine(
        (e) => e.trim().split(/\s+/).length === 5 && isCronExpression(e),
        'must be a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. "0 */6 * * *"',
      )
      .optional(),
    intervalMinutes: z.number().int().min(MIN_INTERVAL_MINUTES).max(7 * 24 * 60).optional(),
  })
  .refine((v) => (v.cron === undefined) !== (v.intervalMinutes === undefined), 'give either cron or intervalMinutes');

/** PUT …/directory: `directoryConfigSchema` (src/sync/settings.ts) with the cron checked and every string storable. */
export const putDirectoryConfig = z
  .strictObject({ ...directoryConfigSchema.shape, schedule: directorySchedule.optional() })
  .superRefine((value, ctx) => {
    for (const [text, path] of stringsOf(value)) {
      if (!isStorableText(text)) ctx.addIssue({ code: 'custom', path, message: 'must not contain NUL or an unpaired surrogate' });
    }
  });

/** POST …/directory/sync; the body may be left out. */
export const startDirectorySync = z.strictObject({ dryRun: z.boolean().optional() }).optional();

/** POST …/domains */
// 253 characters, and the trailing dot of a fully qualified name (the engine strips it).
export const addDomain = z.strictObject({ domain: z.string().min(1).max(254) });

/** POST /sso/token */
export const exchangeSsoCode = z.strictObject({ code: z.string().min(1).max(128) });

// ── Responses ──────────────────────────────────────────────────────────────────────────────────
// Timestamps leave the engine as ISO 8601 strings in UTC (Date#toISOString).

const timestamp = z.iso.datetime();
const id = z.string();

/** RFC 9457 problem details, as src/http/problem.ts sends them (application/problem+json). */
export const problem = z.object({
  type: z.string().describe('urn:portico:problem:<code>'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string().describe('Stable machine-readable code, e.g. member.not_found'),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe('Every invalid field of a 400'),
});

export const providerResponse = z.object({
  id,
  name: z.string(),
  businessName: z.string().nullable(),
  billingEmail: z.string().nullable(),
  type: z.string(),
  status: z.string(),
  statusCode: z.number().int(),
  enabled: z.boolean(),
  createdAt: timestamp,
});

export const providerUserResponse = z.object({
  id,
  providerId: id,
  userId: id.nullable(),
  email: z.string(),
  type: z.enum(PROVIDER_USER_TYPES),
  typeCode: z.number().int(),
  status: z.string(),
  statusCode: z.number().int(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export const organizationResponse = z.object({
  id,
  identifier: z.string(),
  name: z.string(),
  billingEmail: z.string().nullable(),
  plan: z.enum(PLANS),
  seats: z.number().int(),
  status: z.string(),
  statusCode: z.number().int(),
  enabled: z.boolean(),
  providerId: id.nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

const collectionAccessResponse = z.object({ id, readOnly: z.boolean(), hidePasswords: z.boolean(), manage: z.boolean() });

export const memberResponse = z.object({
  id,
  organizationId: id,
  userId: id.nullable(),
  email: z.string(),
  userName: z.string().nullable(),
  name: z.string().nullable(),
  externalId: z.string().nullable(),
  role: z.enum(ROLES),
  roleCode: z.number().int(),
  permissions: z.partialRecord(z.enum(PERMISSION_FLAGS), z.boolean()).nullable(),
  profile: z.record(z.string(), z.unknown()).nullable(),
  status: z.enum(MEMBER_STATUSES),
  statusCode: z.number().int(),
  previousStatus: z.enum(MEMBER_STATUSES).nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
  groups: z.array(id).optional().describe('Read one member to get its groups'),
  collections: z.array(collectionAccessResponse).optional().describe('Read one member to get its collection access'),
});

export const memberPageResponse = z.object({
  data: z.array(memberResponse),
  continuationToken: z.string().optional().describe('Present when more pages follow; pass it back as a query parameter'),
});

export const inviteMembersResponse = z.object({ invited: z.array(memberResponse), skipped: z.array(z.string()) });
export const inviteProviderUsersResponse = z.object({ invited: z.array(providerUserResponse), skipped: z.array(z.string()) });

export const collectionResponse = z.object({
  id,
  organizationId: id,
  name: z.string(),
  externalId: z.string().nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

/** A group is shaped as a collection, with its members and collection access when asked for. */
export const groupResponse = collectionResponse.extend({
  members: z.array(id).optional(),
  collections: z.array(collectionAccessResponse).optional(),
});

export const policyResponse = z.object({
  id: id.nullable(),
  type: z.enum(POLICY_TYPES),
  typeCode: z.number().int(),
  enabled: z.boolean(),
  data: z.record(z.string(), z.unknown()).nullable(),
  updatedAt: timestamp.nullable(),
});

const actor = z.union([
  z.object({ providerUserId: id, userId: id }),
  z.object({ userId: id }),
  z.object({ system: z.enum(['scim', 'directorySync', 'domainVerification', 'api', 'sso']) }),
]);

export const eventResponse = z.object({
  id,
  type: z.enum(Object.keys(EVENT_CODES) as [keyof typeof EVENT_CODES, ...(keyof typeof EVENT_CODES)[]]),
  code: z.number().int().nullable(),
  date: timestamp,
  actor,
  providerId: id.optional(),
  organizationId: id.optional(),
  memberId: id.optional(),
  providerUserId: id.optional(),
  groupId: id.optional(),
  collectionId: id.optional(),
  policyId: id.optional(),
  ip: z.string().optional(),
});

export const eventPageResponse = z.object({
  data: z.array(eventResponse),
  continuationToken: z.string().optional().describe('Present when more pages follow; pass it back as a query parameter'),
});

export const scimStatusResponse = z.object({
  enabled: z.boolean(),
  createdAt: timestamp.nullable(),
  updatedAt: timestamp.nullable(),
  baseUrl: z.url(),
});
export const scimKeyResponse = z.object({ baseUrl: z.url(), token: z.string().describe('Shown once') });

export const claimedDomainResponse = z.object({
  id,
  domain: z.string(),
  txtName: z.string(),
  txtRecord: z.string(),
  verified: z.boolean(),
  verifiedAt: timestamp.nullable(),
  lastCheckedAt: timestamp.nullable(),
  createdAt: timestamp,
});

export const ssoConfigResponse = z.object({
  enabled: z.boolean(),
  kind: z.enum(['oidc', 'saml']),
  jit: z.boolean(),
  returnUrls: z.array(z.string()),
  oidc: z
    .object({
      authority: z.string(),
      clientId: z.string(),
      clientAuthMethod: z.enum(['client_secret_basic', 'client_secret_post']),
      scopes: z.array(z.string()),
      claims: z.object({ subject: z.string(), email: z.string(), name: z.string() }),
      clientSecretSet: z.boolean(),
    })
    .optional(),
  saml: z
    .object({
      idpEntityId: z.string(),
      idpSsoUrl: z.string(),
      idpCertificates: z.array(z.string()),
      idpMetadataUrl: z.string().optional(),
      binding: z.enum(['redirect', 'post']),
      allowUnsolicited: z.boolean(),
      wantAssertionsSigned: z.boolean(),
      minSignatureAlgorithm: z.enum(['sha1', 'sha256', 'sha512']),
      nameIdFormat: z.string().optional(),
    })
    .optional(),
  serviceProvider: z.object({
    loginUrl: z.string(),
    oidcRedirectUri: z.string(),
    samlEntityId: z.string(),
    samlAcsUrl: z.string(),
    samlMetadataUrl: z.string(),
  }),
  revision: z.number().int(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

/** The stored connection (the fields of PUT …/directory), never its password. */
export const directoryConfigResponse = z.looseObject({
  bindPasswordSet: z.literal(true),
  schedule: z.object({ cron: z.string().optional(), intervalMinutes: z.number().int().optional() }).optional(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export const directoryRunResponse = z.object({
  id,
  status: z.enum(DIRECTORY_RUN_STATUSES),
  dryRun: z.boolean(),
  trigger: z.enum(['manual', 'schedule']),
  scheduledFor: timestamp.nullable(),
  createdAt: timestamp,
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
  counts: z.object(Object.fromEntries(DIRECTORY_RUN_COUNTS.map((k) => [k, z.number().int()])) as Record<(typeof DIRECTORY_RUN_COUNTS)[number], z.ZodNumber>),
  problems: z.array(z.unknown()),
  changes: z.array(z.unknown()).optional().describe('A dry run\'s planned changes (read one run to get them)'),
  progress: z.record(z.string(), z.unknown()).optional(),
  message: z.string().optional(),
  failure: z.string().optional(),
});

/** POST …/directory/test: counts, samples and problems, or `ok: false` with the failure. */
export const directoryTestResponse = z.looseObject({ ok: z.boolean() });

export const userResponse = z.object({ id, email: z.string(), name: z.string().nullable(), createdAt: timestamp });

export const apiTokenResponse = z.object({ id, name: z.string(), createdAt: timestamp, lastUsedAt: timestamp.nullable() });
export const newApiTokenResponse = z.object({ id, token: z.string().describe('Shown once') });

export const meResponse = z.object({
  user: userResponse,
  providers: z.array(z.object({ providerId: id, providerUserId: id, type: z.enum(PROVIDER_USER_TYPES), status: z.string() })),
  organizations: z.array(z.object({ organizationId: id, memberId: id, role: z.enum(ROLES), status: z.enum(MEMBER_STATUSES) })),
});

export const acceptedInvitationResponse = z.object({
  user: userResponse,
  apiToken: z.string().nullable().describe('Null when a requireSso policy gives this person sessions through SSO only'),
  member: memberResponse.optional(),
  providerUserId: id.optional(),
});

export const providerSetupResponse = z.object({ provider: providerResponse, user: userResponse, apiToken: z.string() });

export const ssoSessionResponse = z.object({
  token: z.string(),
  user: z.object({ id, email: z.string(), name: z.string().nullable() }),
  organizationId: id,
  expiresAt: timestamp,
});

export const outboxMailResponse = z.object({
  id,
  to: z.string(),
  subject: z.string(),
  text: z.string(),
  status: z.string(),
  attempts: z.number().int(),
  createdAt: timestamp,
  sentAt: timestamp.nullable(),
});

/** `{ data: [...] }`: the answer of every unpaged list. */
export const listOf = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item) });

/** Named in the OpenAPI document's components.schemas, so generated clients get one type each. */
export const NAMED_RESPONSE_SCHEMAS: Record<string, z.ZodType> = {
  Problem: problem,
  Provider: providerResponse,
  ProviderUser: providerUserResponse,
  Organization: organizationResponse,
  Member: memberResponse,
  MemberPage: memberPageResponse,
  Group: groupResponse,
  Collection: collectionResponse,
  Policy: policyResponse,
  Event: eventResponse,
  EventPage: eventPageResponse,
  ClaimedDomain: claimedDomainResponse,
  ScimStatus: scimStatusResponse,
  ScimKey: scimKeyResponse,
  SsoConfig: ssoConfigResponse,
  DirectoryConfig: directoryConfigResponse,
  DirectoryRun: directoryRunResponse,
  User: userResponse,
  ApiToken: apiTokenResponse,
};
