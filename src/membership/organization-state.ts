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
import { reusable } from './prepared.js';

export type OrganizationRow = typeof schema.organizations.$inferSelect;
export type MemberRow = typeof schema.members.$inferSelect;

/**
 * How a transaction holds the organization row (PostgreSQL row-level lock modes, weakest first):
 *
 * - `key share`: writers that rights, owners and seats do not depend on while they run (invites,
 *   SCIM creates, group changes, changes of members who are not confirmed). It conflicts only with
 *   `update`, so any number of these run at once, and each may still move `seats_used` with one
 *   conditional UPDATE (`takeSeats`), whose row lock is the only thing they queue on, from that
 *   statement to commit. It still holds off every change of rights (those take `update`), so the
 *   caller's rights read after taking it stay true until commit.
 * - `share`: as before for readers that must hold off disabling; it conflicts with UPDATEs of the
 *   row, so a transaction holding it must not move seats (two would deadlock).
 * - `update`: changes that count owners or change anyone's rights (revoking, removing or
 *   re-roling a confirmed member, SCIM keys, settings): one at a time per organization.
 */
export type LockMode = 'key share' | 'share' | 'update';
const STRENGTH: Record<LockMode, number> = { 'key share': 0, share: 1, update: 2 };

/**
 * The lock each transaction already holds, by its query surface (each transaction has its own):
 * asking again for the same or a weaker mode costs no query, so an operation inside `atomically`
 * does not lock a second time.
 */
const held = new WeakMap<Tx['db'], { mode: LockMode; org: OrganizationRow }>();

/** Whether this transaction holds the organization row in `mode` or a stronger one. */
export function holdsLock(tx: Tx, organizationId: string, mode: LockMode): boolean {
  const current = held.get(tx.db);
  return current !== undefined && current.org.id === organizationId && STRENGTH[current.mode] >= STRENGTH[mode];
}

const o = schema.organizations;
const lockQuery = (mode: LockMode) =>
  reusable(`lock_organization_${mode.replace(' ', '_')}`, (db) => db.select().from(o).where(eq(o.id, sql.placeholder('id'))).for(mode));
const lockQueries: Record<LockMode, ReturnType<typeof lockQuery>> = {
  'key share': lockQuery('key share'),
  share: lockQuery('share'),
  update: lockQuery('update'),
};

const takeSeatsQuery = reusable('take_seats', (db) =>
  db
    .update(o)
    .set({ seatsUsed: sql`${o.seatsUsed} + ${sql.placeholder('n')}` })
    .where(and(eq(o.id, sql.placeholder('id')), eq(o.enabled, true), sql`${o.seatsUsed} + ${sql.placeholder('n')} <= ${o.seats}`))
    .returning({ seatsUsed: o.seatsUsed }),
);

/** The organization row as read when this transaction locked it (kept current for its own seat moves), if it did. */
export function lockedOrganization(tx: Tx, organizationId: string): OrganizationRow | undefined {
  const current = held.get(tx.db);
  return current?.org.id === organizationId ? current.org : undefined;
}

/**
 * Locks the organization row for the rest of the transaction in `mode` (see `LockMode`), and
 * refuses a missing or disabled organization. A mode stronger than the one held is taken then;
 * the same or a weaker one returns the row read when the lock was taken.
 */
export async function lockOrganization(tx: Tx, organizationId: OrganizationId, mode: LockMode = 'update'): Promise<OrganizationRow> {
  if (holdsLock(tx, organizationId, mode)) return held.get(tx.db)!.org;
  const [org] = await lockQueries[mode](tx.db, { id: organizationId });
  if (!org) throw new OrganizationNotFound();
  if (!org.enabled) throw new OrganizationDisabled();
  held.set(tx.db, { mode, org });
  return org;
}

/** Refuses when taking `additional` seats would exceed the organization's seats (organization locked). */
export function requireSeats(org: OrganizationRow, additional: number): void {
  if (additional <= 0) return;
  if (org.seatsUsed + additional > org.seats) throw seatLimit(org.seats, org.seatsUsed, additional);
}

const seatLimit = (seats: number, used: number, requested: number) =>
  new SeatLimitReached(`The organization has ${Math.max(0, seats - used)} free seat(s); ${requested} needed`, {
    details: { seats, used, requested },
  });

/**
 * Takes `n` seats in one conditional UPDATE: it applies only while the seats suffice and the
 * organization is enabled, judged on the newest committed row (PostgreSQL re-reads a row that a
 * concurrent transaction changed before applying the condition), so concurrent takers never
 * exceed the seats whatever lock they hold. Zero rows: the seat limit (or a disabled
 * organization), and the caller's transaction rolls back. Call it as the last write of the
 * transaction: from here to commit it holds the row, and other takers queue behind it.
 */
export async function takeSeats(tx: Tx, organizationId: string, n: number): Promise<void> {
  if (n <= 0) return;
  const [row] = await takeSeatsQuery(tx.db, { id: organizationId, n });
  if (row) {
    const current = held.get(tx.db);
    if (current?.org.id === organizationId) current.org.seatsUsed = row.seatsUsed;
    return;
  }
  const [org] = await tx.db.select().from(o).where(eq(o.id, organizationId));
  if (!org) throw new OrganizationNotFound();
  if (!org.enabled) throw new OrganizationDisabled();
  throw seatLimit(org.seats, org.seatsUsed, n);
}

/**
 * Moves the seats-in-use counter unconditionally: for seats freed, and for takers that hold the
 * organization row in `update` mode and checked `requireSeats` (directory sync, SSO sign-in).
 */
export async function adjustSeats(tx: Tx, org: OrganizationRow, delta: number): Promise<void> {
  if (delta === 0) return;
  await tx.db
    .update(o)
    .set({ seatsUsed: sql`${o.seatsUsed} + ${delta}` })
    .where(eq(o.id, org.id));
  org.seatsUsed += delta;
}

/**
 * The organization always keeps at least one confirmed owner; confirmed users of its provider
 * count. Call with the organization locked in `update` mode (two such checks must not overlap),
 * naming the member about to stop being one.
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
