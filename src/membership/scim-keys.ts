/**
 * The SCIM bearer key of an organization: random, shown once, stored only as a hash. Enabling
 * again or rotating replaces the hash in one statement, so the old key stops working at once.
 *
 * A key acts with the rights of the person who issued it, never more: a key an admin issues
 * cannot touch owners, and one a custom manager issues grants only that manager's flags. The
 * rights are recorded when the key is issued; rotating the key records the rotator's.
 */
import { eq, sql } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Tx } from './context.js';
import { Conflict, OrganizationDisabled, PermissionDenied, Unauthenticated } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import {
  holds,
  normalizePermissions,
  requireFeature,
  requirePermission,
  type OrganizationCaller,
  type Permissions,
  type Role,
} from './members.rules.js';
import { lockOrganization } from './organization-state.js';
import { reusable } from './prepared.js';
import { generateSecret, hashSecret, secretMatches } from './secrets.js';

export interface ScimStatus {
  enabled: boolean;
  createdAt: string | null;
  updatedAt: string | null;
}

/** Issues a new key (enabling SCIM if it was off); any earlier key stops working. */
/**
 * Enables SCIM (`enable`: refused with a Conflict when it is on already, so a second enable never
 * silently replaces a working key) or rotates its key (`rotate`); the new key is returned once.
 */
export async function issueScimKey(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  mode: 'enable' | 'rotate',
): Promise<string> {
  requirePermission(caller, 'manageScim');
  // The key provisions people with the issuer's rights; without manageUsers it could do nothing.
  if (!holds(caller, 'manageUsers')) {
    throw new PermissionDenied('A SCIM key acts with your rights: issuing one needs the manageUsers permission too');
  }
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'scim');
  if (mode === 'enable') {
    const [current] = await tx.db
      .select({ enabled: schema.scimConfigs.enabled })
      .from(schema.scimConfigs)
      .where(eq(schema.scimConfigs.organizationId, org.id));
    if (current?.enabled) throw new Conflict('SCIM is already on; rotate its key with POST …/scim/rotate');
  }
  const token = generateSecret('scim');
  const issuer = {
    tokenHash: hashSecret(token),
    enabled: true,
    issuerRole: caller.role,
    issuerPermissions: normalizePermissions(caller.role, caller.permissions),
    issuedBy: caller.actor as Record<string, string>,
    updatedAt: tx.now,
  };
  const s = schema.scimConfigs;
  await tx.db
    .insert(s)
    .values({ organizationId: org.id, createdAt: tx.now, ...issuer })
    .onConflictDoUpdate({ target: s.organizationId, set: issuer });
  await recordEvent(tx, { type: 'organization.updated', actor: caller.actor, organizationId: org.id });
  return token;
}

export async function disableScim(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller): Promise<void> {
  requirePermission(caller, 'manageScim');
  const org = await lockOrganization(tx, organizationId);
  // The key's hash is replaced too: re-enabling always issues a new key.
  await tx.db
    .update(schema.scimConfigs)
    .set({ enabled: false, tokenHash: hashSecret(generateSecret('void')), updatedAt: tx.now })
    .where(eq(schema.scimConfigs.organizationId, org.id));
  await recordEvent(tx, { type: 'organization.updated', actor: caller.actor, organizationId: org.id });
}

export async function scimStatus(db: Db, organizationId: string): Promise<ScimStatus> {
  const [row] = await db.select().from(schema.scimConfigs).where(eq(schema.scimConfigs.organizationId, organizationId));
  return {
    enabled: row?.enabled ?? false,
    createdAt: row?.createdAt.toISOString() ?? null,
    updatedAt: row?.updatedAt.toISOString() ?? null,
  };
}

/** Every SCIM request runs this twice (before its transaction and, rechecking, inside it): built once. */
const scimKeyQuery = reusable('check_scim_key', (db) => {
  const s = schema.scimConfigs;
  return db
    .select({
      tokenHash: s.tokenHash,
      enabled: s.enabled,
      issuerRole: s.issuerRole,
      issuerPermissions: s.issuerPermissions,
      plan: schema.organizations.plan,
      orgEnabled: schema.organizations.enabled,
    })
    .from(s)
    .innerJoin(schema.organizations, eq(schema.organizations.id, s.organizationId))
    .where(eq(s.organizationId, sql.placeholder('id')));
});

/**
 * Checks a SCIM bearer key against the organization named in the path and answers the caller the
 * key acts as: the SCIM system actor with its issuer's rights. A key of another organization, a
 * rotated key or a disabled endpoint is simply not valid here.
 */
export async function checkScimKey(db: Db, organizationId: string, token: string): Promise<OrganizationCaller> {
  if (!isId(organizationId)) throw new Unauthenticated('The SCIM key is not valid for this organization');
  const [row] = await scimKeyQuery(db, { id: organizationId });
  if (!row || !row.enabled || !secretMatches(token, row.tokenHash)) {
    throw new Unauthenticated('The SCIM key is not valid for this organization');
  }
  if (!row.orgEnabled) throw new OrganizationDisabled();
  requireFeature(row.plan, 'scim');
  return { actor: { system: 'scim' }, role: row.issuerRole as Role, permissions: (row.issuerPermissions ?? {}) as Permissions };
}
