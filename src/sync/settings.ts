/**
 * An organization's directory configuration: the request body of `PUT /organizations/:oid/directory`
 * (design.md, "Directory sync"), and the connection settings a connector receives once a preset
 * filled the attribute maps and the bind password was unsealed.
 */
import { z } from 'zod';

export const DIRECTORY_KINDS = ['ldap', 'activeDirectory'] as const;
export const DIRECTORY_PRESETS = ['activeDirectory', 'openldap', 'freeipa'] as const;
export const MEMBER_ATTRIBUTES = ['member', 'uniqueMember', 'memberUid'] as const;

/** The shortest schedule interval: a directory read costs the customer's DC as much as ours. */
export const MIN_INTERVAL_MINUTES = 5;

const attribute = z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/, 'must be an LDAP attribute name');
/** An RFC 4515 filter, checked for balance here and parsed by the connector. */
const filter = z
  .string()
  .min(3)
  .max(4096)
  .regex(/^\(.*\)$/s, 'must be an LDAP filter in parentheses, e.g. (objectClass=person)');
const dn = z.string().min(1).max(1024);

export const directoryConfigSchema = z
  .object({
    kind: z.enum(DIRECTORY_KINDS),
    url: z
      .string()
      .max(2048)
      .regex(/^ldaps?:\/\/[^/?#\s]+\/?$/i, 'must be ldap://host[:port] or ldaps://host[:port]'),
    bindDn: dn,
    /** Write-only: sealed with ENCRYPTION_KEY at rest and never returned. Optional on a PUT that keeps the stored one. */
    bindPassword: z.string().min(1).max(1024).optional(),
    tls: z
      .object({
        /** PEM of the CA that signed the server's certificate (a customer's private CA). */
        ca: z.string().max(65_536).regex(/-----BEGIN CERTIFICATE-----/, 'must be a PEM certificate').optional(),
        startTls: z.boolean().optional(),
      })
      .strict()
      .optional(),
    preset: z.enum(DIRECTORY_PRESETS).optional(),
    users: z
      .object({
        baseDn: dn,
        filter: filter.optional(),
        externalIdAttribute: attribute.optional(),
        emailAttribute: attribute.optional(),
        nameAttribute: attribute.optional(),
        /** The attribute `memberUid` values name (posixGroup), e.g. `uid`. */
        uidAttribute: attribute.optional(),
        /** LDAP: a filter matching disabled users (AD: userAccountControl bit 0x2 unless given). */
        disabledFilter: filter.optional(),
      })
      .strict(),
    groups: z
      .object({
        baseDn: dn,
        filter: filter.optional(),
        externalIdAttribute: attribute.optional(),
        nameAttribute: attribute.optional(),
        memberAttributes: z.array(z.enum(MEMBER_ATTRIBUTES)).min(1).max(3).optional(),
      })
      .strict()
      .optional(),
    schedule: z
      .union([
        z.object({ cron: z.string().min(9).max(120) }).strict(),
        z.object({ intervalMinutes: z.number().int().min(MIN_INTERVAL_MINUTES).max(7 * 24 * 60) }).strict(),
      ])
      .optional(),
    options: z
      .object({
        disabledUsers: z.enum(['revoke', 'remove']).optional(),
        /** Remove members whose external id the directory no longer has ("overwrite existing"). */
        removeMissing: z.boolean().optional(),
        /** A read that shrinks the known users by more than this skips removals and ends `guarded`. */
        shrinkGuardPercent: z.number().min(0).max(100).optional(),
        /** Allows a run of more than LARGE_IMPORT changes. */
        largeImport: z.boolean().optional(),
      })
      .strict()
      .optional(),
    timeLimitSeconds: z.number().int().min(1).max(3600).optional(),
    pageSize: z.number().int().min(1).max(1000).optional(),
  })
  .strict();

export type DirectoryConfigInput = z.infer<typeof directoryConfigSchema>;

/** More changes than this in one run need `options.largeImport` (domain.md). */
export const LARGE_IMPORT = 2000;
export const DEFAULT_SHRINK_GUARD_PERCENT = 10;
export const DEFAULT_TIME_LIMIT_SECONDS = 120;
export const DEFAULT_PAGE_SIZE = 500;

export type ExternalIdFormat = 'string' | 'guid';

/** What a connector needs to read one organization's directory: every map filled, the password unsealed. */
export interface ConnectionSettings {
  kind: (typeof DIRECTORY_KINDS)[number];
  url: string;
  bindDn: string;
  bindPassword: string;
  tls: { ca?: string | undefined; startTls: boolean };
  timeLimitSeconds: number;
  pageSize: number;
  users: {
    baseDn: string;
    filter: string;
    externalIdAttribute: string;
    externalIdFormat: ExternalIdFormat;
    emailAttribute: string;
    nameAttribute: string;
    uidAttribute: string;
    /** Entries matching both the users filter and this are disabled. */
    disabledFilter: string | undefined;
  };
  groups:
    | {
        baseDn: string;
        filter: string;
        externalIdAttribute: string;
        externalIdFormat: ExternalIdFormat;
        nameAttribute: string;
        memberAttributes: (typeof MEMBER_ATTRIBUTES)[number][];
      }
    | undefined;
}
