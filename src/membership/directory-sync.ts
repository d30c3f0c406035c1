/**
 * Directory sync's side of the engine: the state a reconcile diffs against, and the bulk
 * application of one batch of planned changes. The reconcile engine (src/sync) decides *what* to
 * change; the rules of *whether* a change may happen stay here: the caller is the `directorySync`
 * system actor with the role admin, so `checkMemberManagement` refuses every change to an owner;
 * seats are counted under the organization row lock; every change writes its event, and every
 * invitation its mail, in the batch's one transaction.
 *
 * A batch is written with multi-row statements (the reference tool and others write one member at
 * a time and manage 1–10 users/s, directory-notes.md): per kind a handful of statements whatever
 * the batch size. Id and row lists travel as one `jsonb` parameter (`jsonb_to_recordset`), which
 * both drivers bind as text and which keeps clear of PostgreSQL's 65,535-parameter limit.
 *
 * Per-item problems (an owner, a seat shortage, an address already taken) are checked before
 * anything is written and come back as `refused`; they never abort the batch. What is applied is
 * applied all or nothing.
 */
import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import { inTransaction, newId, normalizeEmail, pipelined, translateConflicts, type EngineDeps, type Tx } from './context.js';
import { DomainError, MailRateLimited, OrganizationDisabled, OrganizationNotFound, OwnerRequired } from './errors.js';
import { EVENT_CODES, type EventType } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import { INVITATION_TTL_MS } from './invitations.js';
import { mails, sealBody, tokenLink } from './mail.js';
import {
  checkMemberManagement,
  occupiesSeat,
  requireFeature,
  requirePermission,
  type MemberStatus,
  type OrganizationCaller,
  type Role,
} from './members.rules.js';
import { adjustSeats, lockOrganization, lowerEmail, requireSingleOrgAllows, type OrganizationRow } from './organization-state.js';
import { consumeMailBudget } from './rate-limits.js';
import { generateSecret, hashSecret } from './secrets.js';

/** Who a directory sync acts as: a system actor with admin rights, so owners are out of its reach. */
export const DIRECTORY_SYNC_CALLER: OrganizationCaller = Object.freeze({
  actor: { system: 'directorySync' as const },
  role: 'admin' as const,
  permissions: {},
});

/** A member as a reconcile needs it. */
export interface DirectoryMemberState {
  id: string;
  email: string;
  externalId: string | null;
  status: MemberStatus;
  role: Role;
  name: string | null;
}

export interface DirectoryGroupState {
  id: string;
  name: string;
  externalId: string | null;
}

/** Everything a reconcile diffs against, read consistently (the organization row held shared). */
export interface DirectoryState {
  seats: number;
  seatsUsed: number;
  members: DirectoryMemberState[];
  groups: DirectoryGroupState[];
  /** Member ids per group id, for groups that have an externalId (the ones a directory manages). */
  groupMembers: Map<string, string[]>;
}

/**
 * One planned change. Members are named by id where they exist and by external id where they do
 * not yet (an invitee, a member added to a group in the run that invites it). Group member lists
 * name members by external id for additions and by member id for removals.
 */
export type DirectoryChange =
  | { kind: 'invite'; externalId: string; email: string; name: string | null }
  | { kind: 'link'; memberId: string; externalId: string; email: string; name?: string | undefined }
  | { kind: 'update'; memberId: string; externalId: string; email?: string | undefined; name?: string | undefined }
  | { kind: 'revoke'; memberId: string; externalId: string; email: string; reason: 'disabled' }
  | { kind: 'restore'; memberId: string; externalId: string; email: string }
  | { kind: 'remove'; memberId: string; externalId: string; email: string; reason: 'disabled' | 'missing' }
  | { kind: 'createGroup'; externalId: string; name: string; members: string[] }
  | { kind: 'renameGroup'; groupId: string; externalId: string; name: string }
  | { kind: 'groupMembers'; groupId: string; externalId: string; add: string[]; remove: string[] };

export type DirectoryChangeKind = DirectoryChange['kind'];

/** Why one change of a batch was not applied. */
export type DirectoryProblemCode =
  | 'seatShortage'
  | 'owner'
  | 'emailTaken'
  | 'externalIdTaken'
  | 'invalidEmail'
  | 'duplicateEmail'
  | 'duplicateExternalId'
  | 'mailRateLimited'
  | 'policyViolation'
  | 'groupNameTaken'
  | 'groupsNotInPlan'
  | 'refused'
  | 'stale';

export interface RefusedChange {
  change: DirectoryChange;
  code: DirectoryProblemCode;
  message: string;
}

export interface BatchOutcome {
  applied: DirectoryChange[];
  refused: RefusedChange[];
}

/**
 * The order in which one batch applies its kinds: seats freed before seats taken, members before
 * the groups that name them.
 */
export const DIRECTORY_CHANGE_ORDER: readonly DirectoryChangeKind[] = [
  'remove',
  'revoke',
  'link',
  'update',
  'restore',
  'invite',
  'createGroup',
  'renameGroup',
  'groupMembers',
];

/**
 * An address we can mail: one `@`, a dotted domain, no spaces or control characters, at most 254
 * characters (RFC 5321 §4.5.3.1.3), as the REST API's `z.email()` admits.
 */
const ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
export const isMailableAddress = (email: string): boolean =>
  email.length <= 254 && ADDRESS.test(email) && !email.startsWith('.') && !email.includes('..');

export type DirectorySyncHandle = Awaited<ReturnType<typeof openDirectorySync>>;

/**
 * The directory sync of one organization. Refuses a missing or disabled organization and a plan
 * without directory sync, here and again in every batch (under the lock: a plan changed or an
 * organization disabled meanwhile stops the run).
 */
export async function openDirectorySync(deps: EngineDeps, organizationId: string) {
  if (!isId(organizationId)) throw new OrganizationNotFound();
  const o = schema.organizations;
  const [org] = await deps.db.select({ enabled: o.enabled, plan: o.plan }).from(o).where(eq(o.id, organizationId));
  if (!org) throw new OrganizationNotFound();
  if (!org.enabled) throw new OrganizationDisabled();
  requireFeature(org.plan, 'directorySync');
  const id = organizationId as OrganizationId;
  return {
    id,
    caller: DIRECTORY_SYNC_CALLER,
    /** Members, groups and the directory groups' members, in four queries. */
    currentState: (): Promise<DirectoryState> =>
      inTransaction(deps, async (tx) => {
        // Shared: member changes (which lock it for update) wait, so the reads agree with each other.
        const row = await lockOrganization(tx, id, 'share');
        requireFeature(row.plan, 'directorySync');
        return readState(tx.db, row);
      }),
    /** Applies one batch of planned changes in one transaction with the organization row locked. */
    applyBatch: (changes: readonly DirectoryChange[]): Promise<BatchOutcome> =>
      inTransaction(deps, (tx) => applyDirectoryChanges(tx, id, DIRECTORY_SYNC_CALLER, changes)),
  };
}

/**
 * The state in three statements whose answers are compact: the members as one JSON text of
 * arrays (one `JSON.parse`, not 100k rows decoded column by column and mapped to objects), the
 * groups, and each directory group's member ids as one comma-separated text.
 */
async function readState(db: Db, org: OrganizationRow): Promise<DirectoryState> {
  const g = schema.groups;
  const [memberText, groups, memberships] = await Promise.all([
    db
      .execute(
        sql`select coalesce(json_agg(json_build_array(m.id, m.email, m.external_id, m.status, m.role, m.name)), '[]')::text as members
            from members as m where m.organization_id = ${org.id}`,
      )
      .then((result) => rowsOf<{ members: string }>(result)[0]?.members ?? '[]'),
    db.select({ id: g.id, name: g.name, externalId: g.externalId }).from(g).where(eq(g.organizationId, org.id)),
    db
      .execute(
        sql`select gm.group_id::text as group_id, string_agg(gm.member_id::text, ',') as member_ids
            from group_members as gm join groups as g on g.id = gm.group_id
            where gm.organization_id = ${org.id} and g.external_id is not null
            group by gm.group_id`,
      )
      .then((result) => rowsOf<{ group_id: string; member_ids: string }>(result)),
  ]);
  const rows = JSON.parse(memberText) as [string, string, string | null, MemberStatus, Role, string | null][];
  const members = new Array<DirectoryMemberState>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const [id, email, externalId, status, role, name] = rows[i]!;
    members[i] = { id, email, externalId, status, role, name };
  }
  const groupMembers = new Map<string, string[]>();
  for (const { group_id, member_ids } of memberships) groupMembers.set(group_id, member_ids.split(','));
  return { seats: org.seats, seatsUsed: org.seatsUsed, members, groups, groupMembers };
}

/** A list as one jsonb parameter. */
const json = (value: unknown): SQL => sql`${JSON.stringify(value)}::jsonb`;
/** `column in (ids…)` with the ids as one parameter. */
const inIds = (ids: readonly string[]): SQL => sql`(select jsonb_array_elements_text(${json(ids)})::uuid)`;
const inTexts = (values: readonly string[]): SQL => sql`(select jsonb_array_elements_text(${json(values)}))`;

/** A time as a raw statement's parameter (postgres.js binds a bare Date in raw SQL as text and fails). */
const timestamp = (date: Date): SQL => sql`${date.toISOString()}::timestamptz`;

/** `db.execute` answers `{ rows }` on PGlite and an array on postgres.js. */
function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

/** Rows per multi-row INSERT built by drizzle (one parameter per column and row). */
const INSERT_CHUNK = 1000;
function chunked<T>(items: readonly T[], size = INSERT_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

interface TargetRow {
  id: string;
  email: string;
  externalId: string | null;
  status: string;
  previousStatus: string | null;
  role: string;
  userId: string | null;
}

/** Applies one batch in the caller's transaction: checks first, then one statement per kind. */
export async function applyDirectoryChanges(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  changes: readonly DirectoryChange[],
): Promise<BatchOutcome> {
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'directorySync');
  const refused: RefusedChange[] = [];
  const refuse = (change: DirectoryChange, code: DirectoryProblemCode, message: string) => {
    refused.push({ change, code, message });
  };
  const byKind = <K extends DirectoryChangeKind>(kind: K) =>
    changes.filter((c): c is Extract<DirectoryChange, { kind: K }> => c.kind === kind);

  const m = schema.members;
  // Every member a change names, in one read.
  const memberIds = [...new Set(changes.flatMap((c) => ('memberId' in c && isId(c.memberId) ? [c.memberId] : [])))];
  const targets = new Map<string, TargetRow>();
  if (memberIds.length > 0) {
    const rows = await tx.db
      .select({
        id: m.id,
        email: m.email,
        externalId: m.externalId,
        status: m.status,
        previousStatus: m.previousStatus,
        role: m.role,
        userId: m.userId,
      })
      .from(m)
      .where(and(eq(m.organizationId, org.id), inArray(m.id, inIds(memberIds))));
    for (const row of rows) targets.set(row.id, row);
  }
  // Addresses and external ids the batch wants to give out, and who holds them now.
  const wantedEmails = [
    ...new Set(
      changes.flatMap((c) => (c.kind === 'invite' || (c.kind === 'update' && c.email) ? [normalizeEmail(c.email!)] : [])),
    ),
  ];
  const wantedExternalIds = [...new Set(changes.flatMap((c) => (c.kind === 'invite' || c.kind === 'link' ? [c.externalId] : [])))];
  const [emailHolders, externalIdHolders] = await Promise.all([
    wantedEmails.length
      ? tx.db
          .select({ id: m.id, email: lowerEmail })
          .from(m)
          .where(and(eq(m.organizationId, org.id), inArray(lowerEmail, inTexts(wantedEmails))))
      : [],
    wantedExternalIds.length
      ? tx.db
          .select({ id: m.id, externalId: m.externalId })
          .from(m)
          .where(and(eq(m.organizationId, org.id), inArray(m.externalId, inTexts(wantedExternalIds))))
      : [],
  ]);
  const emailHolder = new Map(emailHolders.map((r) => [String(r.email), r.id]));
  const externalIdHolder = new Map(externalIdHolders.map((r) => [r.externalId!, r.id]));

  // Addresses or external ids two changes of this batch both want: neither gets it.
  const emailClaims = countBy(wantedEmailsOf(changes));
  const externalIdClaims = countBy(changes.flatMap((c) => (c.kind === 'invite' || c.kind === 'link' ? [c.externalId] : [])));

  /** The target of a member change, if it exists and the rules let the sync touch it. */
  const target = (change: Extract<DirectoryChange, { memberId: string }>): TargetRow | undefined => {
    const row = targets.get(change.memberId);
    if (!row) {
      refuse(change, 'stale', 'The member no longer exists; the next run plans again');
      return undefined;
    }
    try {
      checkMemberManagement(caller, { targetRole: row.role as Role });
    } catch (error) {
      if (error instanceof OwnerRequired) refuse(change, 'owner', 'Directory sync never changes an owner');
      else if (error instanceof DomainError) refuse(change, 'refused', error.message);
      else throw error;
      return undefined;
    }
    return row;
  };
  const addressProblem = (change: DirectoryChange, email: string, self?: string): boolean => {
    if (!isMailableAddress(email)) {
      refuse(change, 'invalidEmail', `${email} is not a valid email address`);
      return true;
    }
    if ((emailClaims.get(email) ?? 0) > 1) {
      refuse(change, 'duplicateEmail', `Several directory users have the email ${email}`);
      return true;
    }
    const holder = emailHolder.get(email);
    if (holder && holder !== self) {
      refuse(change, 'emailTaken', `Another member already has the email ${email}`);
      return true;
    }
    return false;
  };
  const externalIdProblem = (change: DirectoryChange, externalId: string, self?: string): boolean => {
    if ((externalIdClaims.get(externalId) ?? 0) > 1) {
      refuse(change, 'duplicateExternalId', `Several changes claim the external id ${externalId}`);
      return true;
    }
    const holder = externalIdHolder.get(externalId);
    if (holder && holder !== self) {
      refuse(change, 'externalIdTaken', `Another member already has the external id ${externalId}`);
      return true;
    }
    return false;
  };

  // Seats: what this batch frees comes first (DIRECTORY_CHANGE_ORDER), then what it takes.
  let freeSeats = org.seats - org.seatsUsed;

  const removals = byKind('remove').filter((c) => target(c));
  for (const c of removals) if (occupiesSeat(targets.get(c.memberId)!.status)) freeSeats += 1;
  const revocations = byKind('revoke').filter((c) => {
    const row = target(c);
    if (!row) return false;
    if (row.status === 'revoked') return refuse(c, 'stale', 'The member is already revoked'), false;
    return true;
  });
  freeSeats += revocations.length;
  const links = byKind('link').filter((c) => {
    const row = target(c);
    if (!row) return false;
    if (row.externalId !== null) return refuse(c, 'stale', 'The member is already linked to an external id'), false;
    return !externalIdProblem(c, c.externalId, row.id);
  });
  const updates = byKind('update').filter((c) => {
    const row = target(c);
    if (!row) return false;
    return !(c.email !== undefined && addressProblem(c, normalizeEmail(c.email), row.id));
  });
  const restores: Extract<DirectoryChange, { kind: 'restore' }>[] = [];
  for (const c of byKind('restore')) {
    const row = target(c);
    if (!row) continue;
    if (row.status !== 'revoked') {
      refuse(c, 'stale', 'The member is not revoked');
      continue;
    }
    if (freeSeats < 1) {
      refuse(c, 'seatShortage', 'The organization has no free seat to restore this member');
      continue;
    }
    const status = (row.previousStatus ?? 'invited') as MemberStatus;
    if (row.userId && status !== 'invited') {
      try {
        await requireSingleOrgAllows(tx, org.id, row.userId);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        refuse(c, 'policyViolation', error.message);
        continue;
      }
    }
    freeSeats -= 1;
    restores.push(c);
  }
  const invites: Extract<DirectoryChange, { kind: 'invite' }>[] = [];
  for (const c of byKind('invite')) {
    try {
      checkMemberManagement(caller, { targetRole: 'user', newRole: 'user' });
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      refuse(c, 'refused', error.message);
      continue;
    }
    const email = normalizeEmail(c.email);
    if (addressProblem(c, email) || externalIdProblem(c, c.externalId)) continue;
    if (freeSeats < 1) {
      // Never silent: the caller reports each one, and a run with any is not a success.
      refuse(c, 'seatShortage', `The organization has no free seat to invite ${email}`);
      continue;
    }
    freeSeats -= 1;
    invites.push({ ...c, email });
  }

  // Mails: invitations to new members, and new invitations of invited members whose address changed.
  const reinvited = updates.filter((c) => c.email !== undefined && targets.get(c.memberId)!.status === 'invited' && normalizeEmail(c.email) !== targets.get(c.memberId)!.email.toLowerCase());
  const mailable = await withinMailBudget(tx, [...invites, ...reinvited], (c) => normalizeEmail(c.email!), refuse);
  const invitesToWrite = invites.filter((c) => mailable.has(c));
  const updatesToWrite = updates.filter((c) => !reinvited.includes(c) || mailable.has(c));

  // Groups.
  const groupChanges = changes.filter((c) => c.kind === 'createGroup' || c.kind === 'renameGroup' || c.kind === 'groupMembers');
  let creates: Extract<DirectoryChange, { kind: 'createGroup' }>[] = [];
  let renames: Extract<DirectoryChange, { kind: 'renameGroup' }>[] = [];
  let memberChanges: Extract<DirectoryChange, { kind: 'groupMembers' }>[] = [];
  if (groupChanges.length > 0) {
    const allowed = (() => {
      try {
        requirePermission(caller, 'manageGroups');
        requireFeature(org.plan, 'groups');
        return true;
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        for (const c of groupChanges) refuse(c, 'groupsNotInPlan', error.message);
        return false;
      }
    })();
    if (allowed) ({ creates, renames, memberChanges } = await checkGroupChanges(tx, org, groupChanges, refuse));
  }

  // Writes, in DIRECTORY_CHANGE_ORDER.
  const applied: DirectoryChange[] = [];
  let seatDelta = 0;
  if (removals.length > 0) {
    const removed = await tx.db
      .delete(m)
      .where(and(eq(m.organizationId, org.id), inArray(m.id, inIds(removals.map((c) => c.memberId))), sql`${m.role} <> 'owner'`))
      .returning({ id: m.id, status: m.status });
    seatDelta -= removed.filter((r) => occupiesSeat(r.status)).length;
    applied.push(...confirmed(removals, removed, refuse));
  }
  if (revocations.length > 0) {
    const revoked = await tx.db
      .update(m)
      .set({ previousStatus: sql`${m.status}`, status: 'revoked', updatedAt: tx.now })
      .where(
        and(
          eq(m.organizationId, org.id),
          inArray(m.id, inIds(revocations.map((c) => c.memberId))),
          sql`${m.status} <> 'revoked' and ${m.role} <> 'owner'`,
        ),
      )
      .returning({ id: m.id });
    seatDelta -= revoked.length;
    applied.push(...confirmed(revocations, revoked, refuse));
  }
  if (links.length > 0) {
    const rows = links.map((c) => ({ id: c.memberId, external_id: c.externalId, name: c.name ?? null }));
    const linked = rowsOf<{ id: string }>(
      await tx.db.execute(sql`
        update members as m set external_id = x.external_id, name = coalesce(x.name, m.name), updated_at = ${timestamp(tx.now)}
        from jsonb_to_recordset(${json(rows)}) as x(id uuid, external_id text, name text)
        where m.id = x.id and m.organization_id = ${org.id} and m.external_id is null and m.role <> 'owner'
        returning m.id`),
    );
    applied.push(...confirmed(links, linked, refuse));
  }
  if (updatesToWrite.length > 0) {
    const rows = updatesToWrite.map((c) => ({
      id: c.memberId,
      email: c.email === undefined ? null : normalizeEmail(c.email),
      name: c.name ?? null,
    }));
    const updated = rowsOf<{ id: string }>(
      await translateConflicts(
        async () =>
          tx.db.execute(sql`
            update members as m set email = coalesce(x.email, m.email), name = coalesce(x.name, m.name), updated_at = ${timestamp(tx.now)}
            from jsonb_to_recordset(${json(rows)}) as x(id uuid, email text, name text)
            where m.id = x.id and m.organization_id = ${org.id} and m.role <> 'owner'
            returning m.id`),
        { members_org_email_key: 'A member with this email already exists' },
      ),
    );
    applied.push(...confirmed(updatesToWrite, updated, refuse));
    // An invitation belongs to the address it was mailed to (as updateMember does): the old
    // mailbox's token stops working, and a member still invited is mailed one at its new address.
    const readdressed = updatesToWrite.filter(
      (c) => c.email !== undefined && normalizeEmail(c.email) !== targets.get(c.memberId)!.email.toLowerCase(),
    );
    if (readdressed.length > 0) {
      const i = schema.invitations;
      await tx.db
        .delete(i)
        .where(and(inArray(i.memberId, inIds(readdressed.map((c) => c.memberId))), sql`${i.usedAt} is null`));
      await writeInvitations(
        tx,
        org,
        readdressed.filter((c) => targets.get(c.memberId)!.status === 'invited').map((c) => ({ memberId: c.memberId, email: normalizeEmail(c.email!) })),
      );
    }
  }
  if (restores.length > 0) {
    const restored = await tx.db
      .update(m)
      .set({ status: sql`coalesce(${m.previousStatus}, 'invited')`, previousStatus: null, updatedAt: tx.now })
      .where(
        and(
          eq(m.organizationId, org.id),
          inArray(m.id, inIds(restores.map((c) => c.memberId))),
          sql`${m.status} = 'revoked' and ${m.role} <> 'owner'`,
        ),
      )
      .returning({ id: m.id });
    seatDelta += restored.length;
    applied.push(...confirmed(restores, restored, refuse));
  }
  const invitedIds = new Map<Extract<DirectoryChange, { kind: 'invite' }>, string>();
  if (invitesToWrite.length > 0) {
    const rows = invitesToWrite.map((c) => {
      const id = newId();
      invitedIds.set(c, id);
      return { id, email: c.email, name: c.name, externalId: c.externalId };
    });
    // One statement, the rows as one jsonb parameter: drizzle's multi-row builder costs more CPU
    // (per value) than the insert itself.
    const now = timestamp(tx.now);
    await translateConflicts(
      () =>
        tx.db.execute(sql`
          insert into members (organization_id, id, email, name, external_id, role, status, created_at, updated_at)
          select ${org.id}::uuid, x.id, x.email, x.name, x.external_id, 'user', 'invited', ${now}, ${now}
          from jsonb_to_recordset(${json(rows.map((r) => ({ id: r.id, email: r.email, name: r.name, external_id: r.externalId })))})
            as x(id uuid, email text, name text, external_id text)`),
      {
        members_org_email_key: 'A member with this email already exists',
        members_org_external_id_key: 'A member with this externalId already exists',
      },
    );
    await writeInvitations(tx, org, rows.map((r) => ({ memberId: r.id, email: r.email })));
    seatDelta += rows.length;
    applied.push(...invitesToWrite);
  }
  const groupIds = await writeGroupChanges(tx, org, { creates, renames, memberChanges });
  applied.push(...creates, ...renames, ...memberChanges);

  await adjustSeats(tx, org, seatDelta);
  await writeEvents(
    tx,
    org.id,
    caller,
    applied.map((c) => eventOf(c, { invitedIds, groupIds })),
  );
  return { applied, refused };
}

function wantedEmailsOf(changes: readonly DirectoryChange[]): string[] {
  return changes.flatMap((c) => (c.kind === 'invite' || (c.kind === 'update' && c.email) ? [normalizeEmail(c.email!)] : []));
}

function countBy(values: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

/** The changes whose member the statement touched; the others moved meanwhile. */
function confirmed<C extends Extract<DirectoryChange, { memberId: string }>>(
  changes: C[],
  rows: { id: string }[],
  refuse: (change: DirectoryChange, code: DirectoryProblemCode, message: string) => void,
): C[] {
  const done = new Set(rows.map((r) => r.id));
  const out: C[] = [];
  for (const c of changes) {
    if (done.has(c.memberId)) out.push(c);
    else refuse(c, 'stale', 'The member changed meanwhile; the next run plans again');
  }
  return out;
}

/**
 * The per-recipient mail budget (mail.ts `enqueueMail` applies it to every mail), consumed for each
 * mail the batch will send. A recipient over budget is a per-item problem, not a failed batch. A
 * no-op without a configured cap.
 */
async function withinMailBudget<C extends DirectoryChange>(
  tx: Tx,
  changes: C[],
  recipient: (change: C) => string,
  refuse: (change: DirectoryChange, code: DirectoryProblemCode, message: string) => void,
): Promise<Set<C>> {
  const ok = new Set<C>();
  if (!tx.deps.limits?.mailsPerRecipient) {
    for (const c of changes) ok.add(c);
    return ok;
  }
  for (const c of changes) {
    try {
      await consumeMailBudget(tx, recipient(c));
      ok.add(c);
    } catch (error) {
      if (!(error instanceof MailRateLimited)) throw error;
      refuse(c, 'mailRateLimited', `Too many mails to ${recipient(c)} within the hour; the next run retries`);
    }
  }
  return ok;
}

/**
 * Member invitations and their mails, in bulk: what `sendMemberInvitation` writes per member (a
 * hashed token valid 120 h, the invitation mail sealed with ENCRYPTION_KEY), as two multi-row
 * inserts. Callers have voided any open invitation of the members first.
 */
async function writeInvitations(tx: Tx, org: OrganizationRow, invitees: { memberId: string; email: string }[]): Promise<void> {
  if (invitees.length === 0) return;
  const expiresAt = new Date(tx.now.getTime() + INVITATION_TTL_MS);
  const invitations: { id: string; token_hash: string; email: string; member_id: string }[] = [];
  const outbox: { id: string; recipient: string; subject: string; body: string }[] = [];
  for (const { memberId, email } of invitees) {
    const token = generateSecret('inv');
    invitations.push({ id: newId(), token_hash: hashSecret(token), email, member_id: memberId });
    const mail = mails.memberInvitation(email, org.name, tokenLink(tx.deps.publicUrl, 'accept', token));
    const id = newId();
    outbox.push({ id, recipient: mail.to, subject: mail.subject, body: sealBody(tx.deps.encryptionKey, id, mail.text) });
  }
  const now = timestamp(tx.now);
  await pipelined([
    tx.db.execute(sql`
      insert into invitations (id, kind, token_hash, email, organization_id, member_id, expires_at, created_at)
      select x.id, 'member', x.token_hash, x.email, ${org.id}::uuid, x.member_id, ${timestamp(expiresAt)}, ${now}
      from jsonb_to_recordset(${json(invitations)}) as x(id uuid, token_hash text, email text, member_id uuid)`),
    tx.db.execute(sql`
      insert into outbox (id, recipient, subject, body, next_attempt_at, created_at)
      select x.id, x.recipient, x.subject, x.body, ${now}, ${now}
      from jsonb_to_recordset(${json(outbox)}) as x(id uuid, recipient text, subject text, body text)`),
  ]);
}

type GroupChange = Extract<DirectoryChange, { kind: 'createGroup' | 'renameGroup' | 'groupMembers' }>;

async function checkGroupChanges(
  tx: Tx,
  org: OrganizationRow,
  changes: GroupChange[],
  refuse: (change: DirectoryChange, code: DirectoryProblemCode, message: string) => void,
) {
  const g = schema.groups;
  const names = [...new Set(changes.flatMap((c) => (c.kind === 'groupMembers' ? [] : [c.name.toLowerCase()])))];
  const externalIds = [...new Set(changes.flatMap((c) => (c.kind === 'createGroup' ? [c.externalId] : [])))];
  const ids = [...new Set(changes.flatMap((c) => (c.kind === 'createGroup' || !isId(c.groupId) ? [] : [c.groupId])))];
  const [byName, byExternalId, byId] = await Promise.all([
    names.length
      ? tx.db
          .select({ id: g.id, name: sql<string>`lower(${g.name})` })
          .from(g)
          .where(and(eq(g.organizationId, org.id), inArray(sql`lower(${g.name})`, inTexts(names))))
      : [],
    externalIds.length
      ? tx.db
          .select({ id: g.id, externalId: g.externalId })
          .from(g)
          .where(and(eq(g.organizationId, org.id), inArray(g.externalId, inTexts(externalIds))))
      : [],
    ids.length
      ? tx.db
          .select({ id: g.id })
          .from(g)
          .where(and(eq(g.organizationId, org.id), inArray(g.id, inIds(ids))))
      : [],
  ]);
  const nameHolder = new Map(byName.map((r) => [r.name, r.id]));
  const takenExternalIds = new Set(byExternalId.map((r) => r.externalId));
  const existing = new Set(byId.map((r) => r.id));
  const nameClaims = countBy(changes.flatMap((c) => (c.kind === 'groupMembers' ? [] : [c.name.toLowerCase()])));
  const nameProblem = (c: Extract<GroupChange, { name: string }>, self?: string) => {
    const lower = c.name.toLowerCase();
    const holder = nameHolder.get(lower);
    if ((nameClaims.get(lower) ?? 0) > 1 || (holder && holder !== self)) {
      refuse(c, 'groupNameTaken', `Another group already has the name ${c.name}`);
      return true;
    }
    return false;
  };
  const creates = changes.filter((c): c is Extract<GroupChange, { kind: 'createGroup' }> => {
    if (c.kind !== 'createGroup') return false;
    if (takenExternalIds.has(c.externalId)) return refuse(c, 'stale', 'The group exists already'), false;
    return !nameProblem(c);
  });
  const exists = (c: Extract<GroupChange, { groupId: string }>) => {
    if (existing.has(c.groupId)) return true;
    refuse(c, 'stale', 'The group no longer exists; the next run plans again');
    return false;
  };
  const renames = changes.filter(
    (c): c is Extract<GroupChange, { kind: 'renameGroup' }> => c.kind === 'renameGroup' && exists(c) && !nameProblem(c, c.groupId),
  );
  const memberChanges = changes.filter(
    (c): c is Extract<GroupChange, { kind: 'groupMembers' }> => c.kind === 'groupMembers' && exists(c),
  );
  return { creates, renames, memberChanges };
}

/** Writes checked group changes; returns the ids of the groups created, by external id. */
async function writeGroupChanges(
  tx: Tx,
  org: OrganizationRow,
  { creates, renames, memberChanges }: {
    creates: Extract<DirectoryChange, { kind: 'createGroup' }>[];
    renames: Extract<DirectoryChange, { kind: 'renameGroup' }>[];
    memberChanges: Extract<DirectoryChange, { kind: 'groupMembers' }>[];
  },
): Promise<Map<string, string>> {
  const created = new Map<string, string>();
  const conflicts = {
    groups_org_external_id_key: 'A group with this externalId already exists',
    groups_org_name_key: 'A group with this name already exists',
  };
  if (creates.length > 0) {
    const rows = creates.map((c) => {
      const id = newId();
      created.set(c.externalId, id);
      return { organizationId: org.id, id, name: c.name, externalId: c.externalId, createdAt: tx.now, updatedAt: tx.now };
    });
    await translateConflicts(() => pipelined(chunked(rows).map((chunk) => tx.db.insert(schema.groups).values(chunk))), conflicts);
  }
  if (renames.length > 0) {
    const rows = renames.map((c) => ({ id: c.groupId, name: c.name }));
    await translateConflicts(
      () =>
        tx.db.execute(sql`
          update groups as g set name = x.name, updated_at = ${timestamp(tx.now)}
          from jsonb_to_recordset(${json(rows)}) as x(id uuid, name text)
          where g.id = x.id and g.organization_id = ${org.id}`),
      conflicts,
    );
  }
  // Additions name members by external id (they may have been invited by this very batch).
  const additions = [
    ...creates.map((c) => ({ groupId: created.get(c.externalId)!, externalIds: c.members })),
    ...memberChanges.map((c) => ({ groupId: c.groupId, externalIds: c.add })),
  ].filter((a) => a.externalIds.length > 0);
  const m = schema.members;
  if (additions.length > 0) {
    const wanted = [...new Set(additions.flatMap((a) => a.externalIds))];
    const found = await tx.db
      .select({ id: m.id, externalId: m.externalId })
      .from(m)
      // Owners keep the groups they have: the sync neither adds nor removes them.
      .where(and(eq(m.organizationId, org.id), inArray(m.externalId, inTexts(wanted)), sql`${m.role} <> 'owner'`));
    const idOf = new Map(found.map((r) => [r.externalId!, r.id]));
    const pairs = additions.flatMap((a) => a.externalIds.flatMap((e) => (idOf.has(e) ? [{ g: a.groupId, m: idOf.get(e)! }] : [])));
    if (pairs.length > 0) {
      await tx.db.execute(sql`
        insert into group_members (organization_id, group_id, member_id)
        select ${org.id}, x.g, x.m from jsonb_to_recordset(${json(pairs)}) as x(g uuid, m uuid)
        on conflict do nothing`);
    }
  }
  const removals = memberChanges.flatMap((c) => c.remove.filter(isId).map((id) => ({ g: c.groupId, m: id })));
  if (removals.length > 0) {
    await tx.db.execute(sql`
      delete from group_members as gm using jsonb_to_recordset(${json(removals)}) as x(g uuid, m uuid)
      where gm.group_id = x.g and gm.member_id = x.m and gm.organization_id = ${org.id}
        and not exists (select 1 from members as o where o.id = gm.member_id and o.role = 'owner')`);
  }
  return created;
}

interface EventRow {
  type: EventType;
  memberId?: string | undefined;
  groupId?: string | undefined;
}

function eventOf(
  change: DirectoryChange,
  ids: { invitedIds: Map<DirectoryChange, string>; groupIds: Map<string, string> },
): EventRow {
  switch (change.kind) {
    case 'invite':
      return { type: 'member.invited', memberId: ids.invitedIds.get(change) };
    case 'link':
    case 'update':
      return { type: 'member.updated', memberId: change.memberId };
    case 'revoke':
      return { type: 'member.revoked', memberId: change.memberId };
    case 'restore':
      return { type: 'member.restored', memberId: change.memberId };
    case 'remove':
      return { type: 'member.removed', memberId: change.memberId };
    case 'createGroup':
      return { type: 'group.created', groupId: ids.groupIds.get(change.externalId) };
    case 'renameGroup':
    case 'groupMembers':
      return { type: 'group.updated', groupId: change.groupId };
  }
}

/** One event per applied change, attributed to the sync, as `recordEvent` writes them, in bulk. */
async function writeEvents(tx: Tx, organizationId: string, caller: OrganizationCaller, events: EventRow[]): Promise<void> {
  if (events.length === 0) return;
  const actor = caller.actor;
  const rows = events.map((e) => ({
    id: newId(),
    type: e.type,
    code: EVENT_CODES[e.type],
    member_id: e.memberId ?? null,
    group_id: e.groupId ?? null,
  }));
  await tx.db.execute(sql`
    insert into events (id, type, code, date, actor_user_id, actor_provider_user_id, actor_system, organization_id, member_id, group_id)
    select x.id, x.type, x.code, ${timestamp(tx.now)},
      ${'userId' in actor ? actor.userId : null}::uuid, ${'providerUserId' in actor ? actor.providerUserId : null}::uuid,
      ${'system' in actor ? actor.system : null}::text, ${organizationId}::uuid, x.member_id, x.group_id
    from jsonb_to_recordset(${json(rows)}) as x(id uuid, type text, code integer, member_id uuid, group_id uuid)`);
}
