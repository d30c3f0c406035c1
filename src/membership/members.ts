/**
 * Members of an organization: invite, accept (see accounts.ts), confirm, revoke, restore, remove,
 * reinvite and update. Every function runs inside the caller's transaction with the organization
 * row locked where seats or owners are counted.
 */
import { and, asc, eq, gt, inArray, or, sql } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import { normalizeEmail, newId, pipelined, translateConflicts, type Tx } from './context.js';
import { Conflict, InvalidInput, InvalidStatus, MemberNotFound, SelfActionRefused } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import { isStorableDate } from './storable.js';
import { reusable } from './prepared.js';
import { issueInvitation, voidMemberInvitations } from './invitations.js';
import { enqueueMail, mails, tokenLink } from './mail.js';
import { generateSecret } from './secrets.js';
import {
  checkMemberManagement,
  MEMBER_STATUS_CODES,
  normalizePermissions,
  occupiesSeat,
  requireFeature,
  ROLE_CODES,
  type MemberStatus,
  type OrganizationCaller,
  type Permissions,
  type Role,
} from './members.rules.js';
import {
  adjustSeats,
  holdsLock,
  lockOrganization,
  lowerEmail,
  requireAnotherConfirmedOwner,
  requireOwnIds,
  requireSeats,
  requireSingleOrgAllows,
  takeSeats,
  type LockMode,
  type MemberRow,
  type OrganizationRow,
} from './organization-state.js';

export interface CollectionAccess {
  id: string;
  readOnly: boolean;
  hidePasswords: boolean;
  manage: boolean;
}

export interface Member {
  id: string;
  organizationId: string;
  userId: string | null;
  email: string;
  /** The userName a provisioning source (SCIM) gave the member, if one did; else its email stands for it. */
  userName: string | null;
  name: string | null;
  externalId: string | null;
  role: Role;
  roleCode: number;
  permissions: Permissions | null;
  /** Attributes kept for a provisioning source (e.g. SCIM name parts). */
  profile: Record<string, unknown> | null;
  status: MemberStatus;
  statusCode: number;
  previousStatus: MemberStatus | null;
  createdAt: string;
  updatedAt: string;
  groups?: string[];
  collections?: CollectionAccess[];
}

export function renderMember(row: MemberRow): Member {
  return {
    id: row.id,
    organizationId: row.organizationId,
    userId: row.userId,
    email: row.email,
    userName: row.userName,
    name: row.name,
    externalId: row.externalId,
    role: row.role as Role,
    roleCode: ROLE_CODES[row.role as Role],
    permissions: row.permissions ?? null,
    profile: row.profile ?? null,
    status: row.status as MemberStatus,
    statusCode: MEMBER_STATUS_CODES[row.status as MemberStatus],
    previousStatus: (row.previousStatus as MemberStatus | null) ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

const MEMBER_CONFLICTS = {
  members_org_email_key: 'A member with this email already exists',
  members_org_external_id_key: 'A member with this externalId already exists',
  members_org_user_name_key: 'A member with this userName already exists',
};

export interface InviteMembersInput {
  emails: string[];
  role: Role;
  permissions?: Permissions | null | undefined;
  groups?: string[] | undefined;
  collections?: CollectionAccess[] | undefined;
  /** Only with a single email: the provisioning source's id and the person's name. */
  externalId?: string | undefined;
  name?: string | undefined;
  /** Only with a single email: the provisioning source's userName (unique per organization, case-insensitive). */
  userName?: string | undefined;
  profile?: Record<string, unknown> | undefined;
  /** `skip` (default) passes over emails already present; `conflict` refuses them. */
  onExisting?: 'skip' | 'conflict';
}

export async function loadMember(db: Db, organizationId: string, memberId: string): Promise<MemberRow> {
  if (!isId(memberId)) throw new MemberNotFound();
  const m = schema.members;
  const [row] = await db
    .select()
    .from(m)
    .where(and(eq(m.organizationId, organizationId), eq(m.id, memberId)));
  if (!row) throw new MemberNotFound();
  return row;
}

/** Invites each new email; emails already members are skipped (or refused with `onExisting: conflict`). */
export async function inviteMembers(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  input: InviteMembersInput,
): Promise<{ invited: Member[]; skipped: string[] }> {
  checkMemberManagement(caller, { targetRole: input.role, newRole: input.role, newPermissions: input.permissions });
  // Shared: invites change nobody's rights nor the owners, and the seats are taken last, in one
  // conditional UPDATE, so concurrent invites of one organization overlap until that statement.
  const org = await lockOrganization(tx, organizationId, 'key share');
  if (input.role === 'custom') requireFeature(org.plan, 'customRoles');
  const emails = [...new Set(input.emails.map(normalizeEmail))];
  if (emails.length === 0) throw new InvalidInput('At least one email is required');
  if (
    (input.externalId !== undefined || input.name !== undefined || input.profile !== undefined || input.userName !== undefined) &&
    emails.length !== 1
  ) {
    throw new InvalidInput('externalId, name, userName and profile go with a single email');
  }
  await requireOwnIds(tx, org.id, schema.groups, input.groups ?? [], 'group');
  await requireOwnIds(tx, org.id, schema.collections, (input.collections ?? []).map((c) => c.id), 'collection');

  const m = schema.members;
  // A single provisioned email that must be new (SCIM) needs no look-up: the unique index answers.
  const present =
    input.onExisting === 'conflict' && emails.length === 1
      ? new Set<string>()
      : new Set(
          (
            await tx.db
              .select({ email: m.email })
              .from(m)
              .where(and(eq(m.organizationId, org.id), inArray(lowerEmail, emails)))
          ).map((r) => r.email.toLowerCase()),
        );
  if (present.size > 0 && input.onExisting === 'conflict') throw new Conflict(MEMBER_CONFLICTS.members_org_email_key);
  const fresh = emails.filter((e) => !present.has(e));
  // Early refusal on the row read with the lock; `takeSeats` below decides.
  requireSeats(org, fresh.length);
  if (fresh.length === 0) return { invited: [], skipped: emails };

  const permissions = normalizePermissions(input.role, input.permissions);
  const rows = fresh.map(
    (email): MemberInsert => ({
      organizationId: org.id,
      id: newId(),
      email,
      name: input.name ?? null,
      userName: input.userName ?? null,
      externalId: input.externalId ?? null,
      profile: input.profile ?? null,
      role: input.role,
      permissions,
      status: 'invited',
      createdAt: tx.now,
      updatedAt: tx.now,
    }),
  );
  const inserted = await translateConflicts(() => {
    // A SCIM create (one person, refused if present) is the hot path: its insert is built once.
    if (rows.length === 1 && input.onExisting === 'conflict') return insertOneMember(tx.db, rows[0]!);
    const insert = tx.db.insert(m).values(rows).returning();
    return input.onExisting === 'conflict' ? insert : insert.onConflictDoNothing();
  }, MEMBER_CONFLICTS);
  // Independent writes of the new members, issued together (postgres.js pipelines them on the transaction's connection).
  await pipelined([
    ...inserted.flatMap((row) => [
      input.groups?.length ? replaceMemberGroups(tx, org.id, row.id, input.groups) : undefined,
      input.collections?.length ? replaceMemberCollections(tx, org.id, row.id, input.collections) : undefined,
      sendMemberInvitation(tx, org, row, { fresh: true }),
      recordEvent(tx, { type: 'member.invited', actor: caller.actor, organizationId: org.id, memberId: row.id }),
    ]),
    // Last (statements of a transaction run in the order issued): the organization row is the one
    // every writer of the tenant queues on, held from this statement to commit.
    takeSeats(tx, org.id, inserted.length),
  ]);
  const invitedEmails = new Set(inserted.map((r) => r.email));
  return { invited: inserted.map(renderMember), skipped: emails.filter((e) => !invitedEmails.has(e)) };
}

type MemberInsert = typeof schema.members.$inferInsert;
const insertOneQueries = new Map<string, (db: Db, values: Record<string, unknown>) => Promise<MemberRow[]>>();

/** Inserts one member with a query built once per set of columns given (`reusable`). */
function insertOneMember(db: Db, row: MemberInsert): Promise<MemberRow[]> {
  const columns = Object.keys(row);
  const key = columns.join(',');
  let query = insertOneQueries.get(key);
  if (!query) {
    const placeholders = Object.fromEntries(columns.map((c) => [c, sql.placeholder(c)])) as unknown as MemberInsert;
    query = reusable(`insert_member_${insertOneQueries.size}`, (db) => db.insert(schema.members).values(placeholders).returning());
    insertOneQueries.set(key, query);
  }
  return query(db, row as Record<string, unknown>);
}

async function sendMemberInvitation(
  tx: Tx,
  org: OrganizationRow,
  member: MemberRow,
  options: { fresh?: boolean } = {},
): Promise<void> {
  const token = generateSecret('inv');
  await pipelined([
    issueInvitation(tx, { kind: 'member', email: member.email, organizationId: org.id, memberId: member.id }, { token, ...options }),
    enqueueMail(tx, mails.memberInvitation(member.email, org.name, tokenLink(tx.deps.publicUrl, 'accept', token))),
  ]);
}

/**
 * The lock a change of `member` needs: `update` when it is confirmed, since only confirmed members
 * act (their rights are what a concurrent request rechecks) and count as owners; `key share` for
 * the others (invited, accepted, revoked), whose changes touch neither.
 */
export const targetLock = (member: Pick<MemberRow, 'status'> | undefined): LockMode =>
  member?.status === 'confirmed' ? 'update' : 'key share';

/** The lock a change of the member `memberId` needs, read before locking (for `engine.run`). */
export async function targetLockOf(db: Db, organizationId: string, memberId: string): Promise<LockMode> {
  return targetLock(await loadMember(db, organizationId, memberId).catch(() => undefined));
}

/** Loads the target and applies the rules every change of another member shares. */
async function loadTarget(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  memberId: string,
  change: { newRole?: Role | undefined; newPermissions?: Permissions | null | undefined } = {},
): Promise<{ org: OrganizationRow; member: MemberRow }> {
  // The member is read under the lock its status needs (`targetLock`); one confirmed meanwhile
  // takes the stronger lock and is read again.
  let member = await loadMember(tx.db, organizationId, memberId);
  while (!holdsLock(tx, organizationId, targetLock(member))) {
    await lockOrganization(tx, organizationId, targetLock(member));
    member = await loadMember(tx.db, organizationId, memberId);
  }
  const org = await lockOrganization(tx, organizationId, targetLock(member));
  if (caller.memberId === member.id) throw new SelfActionRefused();
  checkMemberManagement(caller, { targetRole: member.role as Role, ...change });
  return { org, member };
}

async function setStatus(
  tx: Tx,
  member: MemberRow,
  values: Partial<Pick<MemberRow, 'status' | 'previousStatus' | 'userId' | 'name'>>,
): Promise<MemberRow> {
  // Conditional on the status that was read: a transition never applies to a row that moved meanwhile.
  const [row] = await tx.db
    .update(schema.members)
    .set({ ...values, updatedAt: tx.now })
    .where(and(eq(schema.members.id, member.id), eq(schema.members.status, member.status)))
    .returning();
  if (!row) throw new InvalidStatus('The member changed meanwhile; try again');
  return row;
}

export async function confirmMember(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  memberId: string,
): Promise<Member> {
  const { org, member } = await loadTarget(tx, organizationId, caller, memberId);
  if (member.status !== 'accepted') throw new InvalidStatus('Only accepted members can be confirmed');
  await requireSingleOrgAllows(tx, org.id, member.userId!);
  const row = await setStatus(tx, member, { status: 'confirmed' });
  await enqueueMail(tx, mails.confirmed(row.email, org.name));
  await recordEvent(tx, { type: 'member.confirmed', actor: caller.actor, organizationId: org.id, memberId: row.id });
  return renderMember(row);
}

export async function revokeMember(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  memberId: string,
): Promise<Member> {
  const { org, member } = await loadTarget(tx, organizationId, caller, memberId);
  if (member.status === 'revoked') throw new InvalidStatus('The member is already revoked');
  if (member.role === 'owner' && member.status === 'confirmed') await requireAnotherConfirmedOwner(tx, org, member.id);
  const row = await setStatus(tx, member, { status: 'revoked', previousStatus: member.status });
  await adjustSeats(tx, org, -1);
  await recordEvent(tx, { type: 'member.revoked', actor: caller.actor, organizationId: org.id, memberId: row.id });
  return renderMember(row);
}

export async function restoreMember(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  memberId: string,
): Promise<Member> {
  const { org, member } = await loadTarget(tx, organizationId, caller, memberId);
  if (member.status !== 'revoked') throw new InvalidStatus('Only revoked members can be restored');
  requireSeats(org, 1);
  const status = (member.previousStatus ?? 'invited') as MemberStatus;
  if (member.userId && status !== 'invited') await requireSingleOrgAllows(tx, org.id, member.userId);
  const row = await setStatus(tx, member, { status, previousStatus: null });
  await recordEvent(tx, { type: 'member.restored', actor: caller.actor, organizationId: org.id, memberId: row.id });
  await takeSeats(tx, org.id, 1);
  return renderMember(row);
}

/** Removes the membership; the person's account survives. */
export async function removeMember(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  memberId: string,
): Promise<void> {
  const { org, member } = await loadTarget(tx, organizationId, caller, memberId);
  if (member.role === 'owner' && member.status === 'confirmed') await requireAnotherConfirmedOwner(tx, org, member.id);
  await tx.db.delete(schema.members).where(eq(schema.members.id, member.id));
  if (occupiesSeat(member.status)) await adjustSeats(tx, org, -1);
  await recordEvent(tx, { type: 'member.removed', actor: caller.actor, organizationId: org.id, memberId: member.id });
}

export async function reinviteMember(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  memberId: string,
): Promise<Member> {
  const { org, member } = await loadTarget(tx, organizationId, caller, memberId);
  if (member.status !== 'invited') throw new InvalidStatus('Only invited members can be reinvited');
  await sendMemberInvitation(tx, org, member);
  await recordEvent(tx, { type: 'member.reinvited', actor: caller.actor, organizationId: org.id, memberId: member.id });
  return renderMember(member);
}

export interface UpdateMemberInput {
  role?: Role | undefined;
  permissions?: Permissions | null | undefined;
  groups?: string[] | undefined;
  collections?: CollectionAccess[] | undefined;
  name?: string | null | undefined;
  externalId?: string | null | undefined;
  /** A new email (lower-cased; unique in the organization). */
  email?: string | undefined;
  /** A new userName (unique in the organization, case-insensitive); null makes the email stand for it. */
  userName?: string | null | undefined;
  profile?: Record<string, unknown> | null | undefined;
}

export async function updateMember(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  memberId: string,
  input: UpdateMemberInput,
): Promise<Member> {
  const { org, member } = await loadTarget(tx, organizationId, caller, memberId, {
    newRole: input.role,
    newPermissions: input.permissions,
  });
  const role = input.role ?? (member.role as Role);
  if (role === 'custom' && (input.role !== undefined || input.permissions !== undefined)) {
    requireFeature(org.plan, 'customRoles');
  }
  if (member.role === 'owner' && role !== 'owner' && member.status === 'confirmed') {
    await requireAnotherConfirmedOwner(tx, org, member.id);
  }
  if (input.groups) await requireOwnIds(tx, org.id, schema.groups, input.groups, 'group');
  if (input.collections) {
    await requireOwnIds(tx, org.id, schema.collections, input.collections.map((c) => c.id), 'collection');
  }
  const [row] = await translateConflicts(
    () =>
      tx.db
        .update(schema.members)
        .set({
          role,
          permissions:
            input.role !== undefined || input.permissions !== undefined
              ? normalizePermissions(role, input.permissions ?? (member.permissions as Permissions | null))
              : member.permissions,
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.externalId !== undefined ? { externalId: input.externalId } : {}),
          ...(input.email !== undefined ? { email: normalizeEmail(input.email) } : {}),
          ...(input.userName !== undefined ? { userName: input.userName } : {}),
          ...(input.profile !== undefined ? { profile: input.profile } : {}),
          updatedAt: tx.now,
        })
        .where(eq(schema.members.id, member.id))
        .returning(),
    MEMBER_CONFLICTS,
  );
  if (input.collections) await replaceMemberCollections(tx, org.id, member.id, input.collections);
  if (row!.email !== member.email) {
    // An invitation belongs to the address it was mailed to: the old mailbox's token stops working,
    // and a member still invited is mailed a new one at its new address.
    if (row!.status === 'invited') await sendMemberInvitation(tx, org, row!);
    else await voidMemberInvitations(tx, member.id);
  }
  await recordEvent(tx, { type: 'member.updated', actor: caller.actor, organizationId: org.id, memberId: member.id });
  if (input.groups) {
    await replaceMemberGroups(tx, org.id, member.id, input.groups);
    await recordEvent(tx, { type: 'member.groupsUpdated', actor: caller.actor, organizationId: org.id, memberId: member.id });
  }
  return withAccess(tx.db, renderMember(row!));
}

async function replaceMemberGroups(tx: Tx, organizationId: string, memberId: string, groupIds: string[]): Promise<void> {
  await tx.db.delete(schema.groupMembers).where(eq(schema.groupMembers.memberId, memberId));
  const unique = [...new Set(groupIds)];
  if (unique.length > 0) {
    await tx.db.insert(schema.groupMembers).values(unique.map((groupId) => ({ organizationId, groupId, memberId })));
  }
}

async function replaceMemberCollections(
  tx: Tx,
  organizationId: string,
  memberId: string,
  access: CollectionAccess[],
): Promise<void> {
  await tx.db.delete(schema.collectionMembers).where(eq(schema.collectionMembers.memberId, memberId));
  const byId = new Map(access.map((a) => [a.id, a]));
  if (byId.size > 0) {
    await tx.db.insert(schema.collectionMembers).values(
      [...byId.values()].map((a) => ({
        organizationId,
        collectionId: a.id,
        memberId,
        readOnly: a.readOnly,
        hidePasswords: a.hidePasswords,
        manage: a.manage,
      })),
    );
  }
}

/** Adds the member's groups and direct collection access to its view. */
export async function withAccess(db: Db, member: Member): Promise<Member> {
  const groupRows = await db
    .select({ groupId: schema.groupMembers.groupId })
    .from(schema.groupMembers)
    .where(eq(schema.groupMembers.memberId, member.id));
  const cm = schema.collectionMembers;
  const access = await db
    .select({ id: cm.collectionId, readOnly: cm.readOnly, hidePasswords: cm.hidePasswords, manage: cm.manage })
    .from(cm)
    .where(eq(cm.memberId, member.id));
  return { ...member, groups: groupRows.map((g) => g.groupId).sort(), collections: access };
}

export interface MemberPage {
  data: Member[];
  continuationToken?: string;
}

export const MEMBER_PAGE_SIZE = 100;

/** Members in creation order, in pages with a continuation token; optionally one status. */
export async function listMembers(
  db: Db,
  organizationId: string,
  query: { status?: MemberStatus | undefined; continuationToken?: string | undefined; email?: string | undefined },
): Promise<MemberPage> {
  const m = schema.members;
  const conditions = [eq(m.organizationId, organizationId)];
  if (query.status) conditions.push(eq(m.status, query.status));
  if (query.email) conditions.push(eq(lowerEmail, normalizeEmail(query.email)));
  if (query.continuationToken) {
    const after = decodeMemberCursor(query.continuationToken);
    conditions.push(or(gt(m.createdAt, after.createdAt), and(eq(m.createdAt, after.createdAt), gt(m.id, after.id)))!);
  }
  const rows = await db
    .select()
    .from(m)
    .where(and(...conditions))
    .orderBy(asc(m.createdAt), asc(m.id))
    .limit(MEMBER_PAGE_SIZE + 1);
  const page = rows.slice(0, MEMBER_PAGE_SIZE);
  const last = page.at(-1);
  const data = page.map(renderMember);
  return rows.length > MEMBER_PAGE_SIZE && last
    ? { data, continuationToken: Buffer.from(JSON.stringify([last.createdAt.toISOString(), last.id])).toString('base64url') }
    : { data };
}

function decodeMemberCursor(token: string): { createdAt: Date; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as [string, string];
    const date = new Date(createdAt);
    if (!isStorableDate(date) || typeof id !== 'string' || !isId(id)) throw new Error();
    return { createdAt: date, id };
  } catch {
    throw new InvalidInput('continuationToken is not valid');
  }
}
