/**
 * The SCIM bearer key of an organization: random, shown once, stored only as a hash. Enabling
 * again or rotating replaces the hash in one statement, so the old key stops working at once.
 */
import { eq } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { EngineDeps, Tx } from './context.js';
import { OrganizationDisabled, Unauthenticated } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import { requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { lockOrganization } from './organization-state.js';
import { generateSecret, hashSecret, secretMatches } from './secrets.js';

export interface ScimStatus {
  enabled: boolean;
  createdAt: string | null;
  updatedAt: string | null;
}

/** Issues a new key (enabling SCIM if it was off); any earlier key stops working. */
export async function issueScimKey(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller): Promise<string> {
  requirePermission(caller, 'manageScim');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'scim');
  const token = generateSecret('scim');
  const s = schema.scimConfigs;
  await tx.db
    .insert(s)
    .values({ organizationId: org.id, tokenHash: hashSecret(token), enabled: true, createdAt: tx.now, updatedAt: tx.now })
    .onConflictDoUpdate({ target: s.organizationId, set: { tokenHash: hashSecret(token), enabled: true, updatedAt: tx.now } });
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

/**
 * Checks a SCIM bearer key against the organization named in the path. A key of another
 * organization, a rotated key or a disabled endpoint is simply not valid here.
 */
export async function checkScimKey(deps: EngineDeps, organizationId: string, token: string): Promise<void> {
  if (!isId(organizationId)) throw new Unauthenticated('The SCIM key is not valid for this organization');
  const [row] = await deps.db
    .select({ tokenHash: schema.scimConfigs.tokenHash, enabled: schema.scimConfigs.enabled, plan: schema.organizations.plan, orgEnabled: schema.organizations.enabled })
    .from(schema.scimConfigs)
    .innerJoin(schema.organizations, eq(schema.organizations.id, schema.scimConfigs.organizationId))
    .where(eq(schema.scimConfigs.organizationId, organizationId));
  if (!row || !row.enabled || !secretMatches(token, row.tokenHash)) {
    throw new Unauthenticated('The SCIM key is not valid for this organization');
  }
  if (!row.orgEnabled) throw new OrganizationDisabled();
  requireFeature(row.plan, 'scim');
}
