/**
 * Who may act in an organization, and as what. Provider users act as owners of their provider's
 * clients; members act with their own role; anyone else gets "not found", never a hint.
 */
import { and, eq, lte, sql } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Actor, Principal, SystemActorName } from './actor.js';
import { inTransaction, type EngineDeps, type Tx } from './context.js';
import { OrganizationDisabled, OrganizationNotFound, ProviderDisabled } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type MemberId, type OrganizationId, type ProviderUserId } from './ids.js';
import { lockedOrganization, type OrganizationRow } from './organization-state.js';
import type { OrganizationCaller, Permissions, Role } from './members.rules.js';
import { renderOrganization, type Organization } from './providers.js';

const ACCESS_EVENT_INTERVAL_MS = 3_600_000;

export async function loadOrganization(db: Db, organizationId: string): Promise<Organization> {
  return renderOrganization(await loadOrganizationRow(db, organizationId));
}

/**
 * Resolves the caller of a request by a person's or the operator's token, recording a provider
 * user's access. Operations that change something resolve it again with `recheckOrganizationCaller`
 * once they hold the organization lock.
 */
export async function resolveOrganizationCaller(
  deps: EngineDeps,
  organizationId: string,
  principal: Principal,
): Promise<OrganizationCaller> {
  const org = await loadOrganizationRow(deps.db, organizationId);
  const caller = await findCaller(deps.db, org, principal);
  if ('providerUserId' in caller.actor) {
    await recordProviderAccess(deps, { providerId: org.providerId!, providerUserId: caller.actor.providerUserId, organizationId: org.id });
  }
  return caller;
}

/**
 * The caller's rights as they are now, read in `tx` after the organization row was locked: a
 * demotion, revocation or removal committed while the request waited for the lock applies to it.
 */
export async function recheckOrganizationCaller(
  tx: Tx,
  organizationId: OrganizationId,
  principal: Principal,
): Promise<OrganizationCaller> {
  // The row read by the lock is as current as a new read would be: no second query.
  return findCaller(tx.db, lockedOrganization(tx, organizationId) ?? (await loadOrganizationRow(tx.db, organizationId)), principal);
}

async function loadOrganizationRow(db: Db, organizationId: string): Promise<OrganizationRow> {
  if (!isId(organizationId)) throw new OrganizationNotFound();
  const [row] = await db.select().from(schema.organizations).where(eq(schema.organizations.id, organizationId));
  if (!row) throw new OrganizationNotFound();
  return row;
}

/**
 * Provider users act as owners of their provider's clients; confirmed members with their role;
 * anyone else learns nothing ("not found"). A disabled organization is closed to everyone but
 * the operator, for reads too; its own people are told so.
 */
async function findCaller(db: Db, org: OrganizationRow, principal: Principal): Promise<OrganizationCaller> {
  if (principal.kind === 'system') return systemCaller('api');
  // A session from an organization's SSO acts in that organization only, and only as the member
  // its IdP vouched for: the IdP of a client never makes anyone the provider's staff.
  if (principal.organizationId && principal.organizationId !== org.id) throw new OrganizationNotFound();
  if (org.providerId && !principal.organizationId) {
    const pu = schema.providerUsers;
    const [staff] = await db
      .select({ id: pu.id, providerEnabled: schema.providers.enabled })
      .from(pu)
      .innerJoin(schema.providers, eq(schema.providers.id, pu.providerId))
      .where(and(eq(pu.providerId, org.providerId), eq(pu.userId, principal.userId), eq(pu.status, 'confirmed')));
    if (staff) {
      if (!staff.providerEnabled) throw new ProviderDisabled();
      if (!org.enabled) throw new OrganizationDisabled();
      const actor: Actor = { providerUserId: staff.id as ProviderUserId, userId: principal.userId };
      // Staff who are also members of the client are still themselves: nobody revokes or removes themselves.
      const [own] = await db
        .select({ id: schema.members.id })
        .from(schema.members)
        .where(and(eq(schema.members.organizationId, org.id), eq(schema.members.userId, principal.userId)));
      return { actor, role: 'owner', permissions: {}, ...(own ? { memberId: own.id as MemberId } : {}) };
    }
  }
  const m = schema.members;
  const [member] = await db
    .select()
    .from(m)
    .where(and(eq(m.organizationId, org.id), eq(m.userId, principal.userId), eq(m.status, 'confirmed')));
  if (!member) throw new OrganizationNotFound();
  if (!org.enabled) throw new OrganizationDisabled();
  return {
    actor: { userId: principal.userId },
    role: member.role as Role,
    permissions: (member.permissions ?? {}) as Permissions,
    memberId: member.id as MemberId,
  };
}

/** A provisioning source (SCIM, directory sync, …) acting with owner rights. */
export const systemCaller = (system: SystemActorName): OrganizationCaller => ({
  actor: { system },
  role: 'owner',
  permissions: {},
});

/**
 * Records one access event per provider user, organization and hour. The upsert decides
 * atomically, so parallel first requests write one event.
 */
async function recordProviderAccess(
  deps: EngineDeps,
  access: { providerId: string; providerUserId: string; organizationId: string },
): Promise<void> {
  await inTransaction(deps, async (tx) => {
    const pa = schema.providerAccesses;
    const due = new Date(tx.now.getTime() - ACCESS_EVENT_INTERVAL_MS);
    const written = await tx.db
      .insert(pa)
      .values({ ...access, lastAt: tx.now })
      .onConflictDoUpdate({
        target: [pa.providerUserId, pa.organizationId],
        set: { lastAt: sql`excluded.last_at` },
        setWhere: lte(pa.lastAt, due),
      })
      .returning({ lastAt: pa.lastAt });
    if (written.length === 0) return;
    const [staff] = await tx.db.select().from(schema.providerUsers).where(eq(schema.providerUsers.id, access.providerUserId));
    await recordEvent(tx, {
      type: 'organization.accessed',
      actor: { providerUserId: access.providerUserId as ProviderUserId, userId: staff!.userId! } as Actor,
      providerId: access.providerId,
      organizationId: access.organizationId,
    });
  });
}

