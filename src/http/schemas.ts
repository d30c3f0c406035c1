/** Request schemas of /api/v1: strict, so unknown fields and wrong types answer 400 with every path. */
import { validate as isCronExpression } from 'node-cron';
import { z } from 'zod';
import { directoryConfigSchema, MIN_INTERVAL_MINUTES } from '../sync/settings.js';
import { isStorableText, MEMBER_STATUSES, PERMISSION_FLAGS, PLANS, PROVIDER_INVITE_BATCH, PROVIDER_USER_TYPES, ROLES } from '../membership/index.js';

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
