/**
 * Reads and locks shared by the organization's concepts: the organization row (locked for seats
 * and last-owner rules), seat counts, owner counts, reference checks and the singleOrg rule.
 */
import { and, count, eq, inArray, ne, sql } from 'drizzle-orm';
import { schema } from '../db/index.js';
import type { Tx } from './context.js';
import {
  InvalidInput,
  LastOwnerRequired,
  OrganizationDisabled,
  OrganizationNotFound,
  PolicyViolation,
  SeatLimitReached,
} from './errors.js';
import { isId, type OrganizationId } from './ids.js';

export type OrganizationRow = typeof schema.organizations.$inferSelect;
export type MemberRow = typeof schema.members.$inferSelect;

/**
 * Locks the organization row for the rest of the transaction. Every change that counts seats or
 * owners takes this lock first, so concurrent invites and revokes serialise on it. A change that
 * needs no serialising takes it in `share` mode: it still refuses a disabled organization and
 * holds off disabling it meanwhile.
 */
export async function lockOrganization(
  tx: Tx,
  organizationId: OrganizationId,
  mode: 'update' | 'share' = 'update',
): Promise<OrganizationRow> {
  const [org] = await tx.db
    .select()
    .from(schema.organizations)
    .where(eq(schema.organizations.id, organizationId))
    .for(mode);
  if (!org) throw new OrganizationNotFound();
  if (!org.enabled) throw new OrganizationDisabled();
  return org;
}

/** Refuses when taking `additional` seats would exceed the organization's seats (organization locked). */
export function requireSeats(org: OrganizationRow, additional: number): void {
  if (additional <= 0) return;
  if (org.seatsUsed + additional > org.seats) {
    throw new SeatLimitReached(`The organization has ${org.seats - org.seatsUsed} free seat(s); ${additional} needed`, {
      details: { seats: org.seats, used: org.seatsUsed, requested: additional },
    });
  }
}

/**
 * Moves the seats-in-use counter. Every status change that takes or frees a seat calls this in
 * its transaction, with the organization row locked.
 */
export async function adjustSeats(tx: Tx, org: OrganizationRow, delta: number): Promise<void> {
  if (delta === 0) return;
  const o = schema.organizations;
  await tx.db
    .update(o)
    .set({ seatsUsed: sql`${o.seatsUsed} + ${delta}` })
    .where(eq(o.id, org.id));
  org.seatsUsed += delta;
}

/**
 * The organization always keeps at least one confirmed owner; confirmed users of its provider
 * count. Call with the organization locked, naming the member about to stop being one.
 */
export async function requireAnotherConfirmedOwner(tx: Tx, org: OrganizationRow, leavingMemberId: string): Promise<void> {
  const m = schema.members;
  const [owners] = await tx.db
    .select({ n: count() })
    .from(m)
    .where(and(eq(m.organizationId, org.id), eq(m.role, 'owner'), eq(m.status, 'confirmed'), ne(m.id, leavingMemberId)));
  if ((owners?.n ?? 0) > 0) return;
  if (org.providerId) {
    const pu = schema.providerUsers;
    const [staff] = await tx.db
      .select({ n: count() })
      .from(pu)
      .where(and(eq(pu.providerId, org.providerId), eq(pu.status, 'confirmed')));
    if ((staff?.n ?? 0) > 0) return;
  }
  throw new LastOwnerRequired();
}

/** Ids that must all belong to the organization; anything else is refused, never linked. */
export async function requireOwnIds(
  tx: Tx,
  organizationId: string,
  table: typeof schema.members | typeof schema.groups | typeof schema.collections,
  ids: readonly string[],
  what: string,
): Promise<void> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return;
  // Malformed ids never reach the uuid column; well-formed ones are looked up, so every bad id is named.
  const bad = unique.filter((id) => !isId(id));
  const wellFormed = unique.filter(isId);
  if (wellFormed.length > 0) {
    const found = await tx.db
      .select({ id: table.id })
      .from(table)
      .where(and(eq(table.organizationId, organizationId), inArray(table.id, wellFormed)));
    const known = new Set(found.map((r) => r.id));
    bad.push(...wellFormed.filter((id) => !known.has(id)));
  }
  if (bad.length > 0) throw new InvalidInput(`Unknown ${what} id(s): ${bad.join(', ')}`, { details: { [what]: bad } });
}

/**
 * singleOrg: a person may not be an accepted or confirmed member of another organization when
 * this organization, or that one, has the singleOrg policy enabled.
 */
export async function requireSingleOrgAllows(tx: Tx, organizationId: string, userId: string): Promise<void> {
  // The person's row serialises these checks: two organizations taking the same person at once
  // would otherwise each see the other membership as absent.
  await tx.db.select({ id: schema.users.id }).from(schema.users).where(eq(schema.users.id, userId)).for('update');
  const m = schema.members;
  const others = await tx.db
    .select({ organizationId: m.organizationId })
    .from(m)
    .where(and(eq(m.userId, userId), ne(m.organizationId, organizationId), inArray(m.status, ['accepted', 'confirmed'])));
  if (others.length === 0) return;
  const p = schema.policies;
  const blocking = await tx.db
    .select({ organizationId: p.organizationId })
    .from(p)
    .where(
      and(
        eq(p.type, 'singleOrg'),
        eq(p.enabled, true),
        inArray(p.organizationId, [organizationId, ...others.map((o) => o.organizationId)]),
      ),
    )
    .limit(1);
  if (blocking.length > 0) {
    throw new PolicyViolation('The singleOrg policy forbids membership in more than one organization', {
      details: { policy: 'singleOrg' },
    });
  }
}

/** Lower-cased emails, for comparisons that the unique indexes make case-insensitive. */
export const lowerEmail = sql`lower(${schema.members.email})`;
