/**
 * The diff of a directory sync: what must change in an organization so that it matches a directory
 * snapshot (domain.md, "Provisioning sources"; issue 7, point 3). Pure: it reads the organization's
 * state and the snapshot and returns changes and per-user problems; nothing here writes, so every
 * rule is testable without a database, and a run that crashed is completed by planning again.
 *
 * Identity is the external id (entryUUID, objectGUID): a member is matched by it, and a member is
 * "gone from the directory" only when its external id is absent, never by email
 * (directory-notes.md, "Changes and deletions"). Email only links a member that has no external id
 * yet.
 */
import {
  DIRECTORY_CHANGE_ORDER,
  isMailableAddress,
  type DirectoryChange,
  type DirectoryMemberState,
  type DirectoryState,
} from '../membership/index.js';
import { flattenGroups } from './flatten.js';
import { LARGE_IMPORT } from './settings.js';
import type { DirectorySnapshot, DirectoryUser } from './source.js';

export type PlannedChange = DirectoryChange;

export interface ReconcileOptions {
  /** What a user disabled in the directory becomes: revoked (keeps its row and groups) or removed. */
  disabledUsers: 'revoke' | 'remove';
  /** Remove members whose external id the directory no longer has ("overwrite existing"). */
  removeMissing: boolean;
  /** A read missing more than this percentage of the linked members skips every destructive change. */
  shrinkGuardPercent: number;
  /** Allows a run of more than LARGE_IMPORT changes. */
  largeImport: boolean;
}

export type SyncProblemCode =
  | 'missingEmail'
  | 'invalidEmail'
  | 'duplicateEmail'
  | 'duplicateExternalId'
  | 'emailTaken'
  | 'owner'
  | 'seatShortage'
  | 'duplicateGroupExternalId'
  | 'duplicateGroupName'
  | 'groupNameTaken'
  | 'readWarning'
  | (string & {});

/** One user's or group's problem, as the run reports it. */
export interface SyncProblem {
  externalId?: string;
  email?: string;
  dn?: string;
  code: SyncProblemCode;
  message: string;
}

export interface Plan {
  /** In the order they must be applied (DIRECTORY_CHANGE_ORDER): seats freed first, groups last. */
  changes: PlannedChange[];
  problems: SyncProblem[];
  /** Why destructive changes (removals, revocations, group member removals) were left out. */
  guard?: string;
  /** Why nothing may be applied: more than LARGE_IMPORT changes without the large-import option. */
  tooLarge?: string;
}

type EmailState = 'ok' | 'missing' | 'invalid' | 'duplicate';

/** Plans the changes that bring `current` in step with `snapshot`. */
export function planChanges(current: DirectoryState, snapshot: DirectorySnapshot, options: ReconcileOptions): Plan {
  const problems: SyncProblem[] = [];
  const report = (user: DirectoryUser, code: SyncProblemCode, message: string, email = normalize(user.email)) => {
    problems.push({ externalId: user.externalId, ...(email ? { email } : {}), dn: user.dn, code, message });
  };

  // Every external id read counts as present, even one whose entry has a problem: a problem is never
  // a reason to remove somebody.
  // One pass over the users: each external id read, with the index of its user (-1 when several
  // users have it), and how often each normalised email is read.
  const users = snapshot.users;
  const userIndex = new Map<string, number>();
  const emails = new Array<string | null>(users.length);
  const emailCount = new Map<string, number>();
  for (let i = 0; i < users.length; i++) {
    const u = users[i]!;
    userIndex.set(u.externalId, userIndex.has(u.externalId) ? -1 : i);
    const email = normalize(u.email);
    emails[i] = email;
    if (email) emailCount.set(email, (emailCount.get(email) ?? 0) + 1);
  }

  const byExternalId = new Map<string, DirectoryMemberState>();
  for (const m of current.members) if (m.externalId !== null) byExternalId.set(m.externalId, m);
  // Members by address, built on first use: a run where every user matches by external id and
  // keeps its address never needs it.
  let byEmailMap: Map<string, DirectoryMemberState> | undefined;
  const byEmail = {
    get(email: string): DirectoryMemberState | undefined {
      if (!byEmailMap) {
        byEmailMap = new Map();
        for (const m of current.members) byEmailMap.set(m.email.toLowerCase(), m);
      }
      return byEmailMap.get(email);
    },
  };

  const memberChanges: PlannedChange[] = [];
  const invites: Extract<PlannedChange, { kind: 'invite' }>[] = [];
  /** Whether each user's external id will be held once the plan is applied (by a member or an invitee); owners excluded. */
  const held = new Uint8Array(users.length);
  const isHeld = (externalId: string): boolean => {
    const i = userIndex.get(externalId);
    return i !== undefined && i >= 0 && held[i] === 1;
  };
  /** The external id each member will hold once the plan is applied, by member id (owners and members removed never). */
  const heldExternalId = new Map<string, string>();
  /** Members this plan removes, with their status (a removal frees a seat unless already revoked). */
  const removedMembers = new Map<string, DirectoryMemberState['status']>();

  for (let i = 0; i < users.length; i++) {
    const user = users[i]!;
    if (userIndex.get(user.externalId) === -1) {
      report(user, 'duplicateExternalId', `Several directory entries have the external id ${user.externalId}; none is applied`);
      continue;
    }
    const email = emails[i]!;
    const state: EmailState = !email
      ? 'missing'
      : !isMailableAddress(email)
        ? 'invalid'
        : (emailCount.get(email) ?? 0) > 1
          ? 'duplicate'
          : 'ok';
    if (state === 'missing') report(user, 'missingEmail', 'The directory entry has no email address');
    if (state === 'invalid') report(user, 'invalidEmail', `${email} is not a valid email address`);
    if (state === 'duplicate') report(user, 'duplicateEmail', `Several directory users have the email ${email}; none is applied`);

    let member = byExternalId.get(user.externalId);
    let link = false;
    if (!member) {
      if (state !== 'ok') continue;
      const holder = byEmail.get(email!);
      if (!holder) {
        // A disabled user who is not a member yet has nothing to lose: not invited.
        if (!user.disabled) {
          invites.push({ kind: 'invite', externalId: user.externalId, email: email!, name: user.name });
          held[i] = 1;
        }
        continue;
      }
      if (holder.externalId !== null) {
        report(user, 'emailTaken', `The member with the email ${email} is linked to another directory entry`);
        continue;
      }
      member = holder;
      link = true;
    }

    const disabledAction = user.disabled
      ? options.disabledUsers === 'remove'
        ? 'remove'
        : member.status !== 'revoked'
          ? 'revoke'
          : undefined
      : member.status === 'revoked'
        ? 'restore'
        : undefined;
    const newEmail = state === 'ok' && email !== member.email.toLowerCase() ? email! : undefined;
    const newName = user.name !== null && user.name !== member.name ? user.name : undefined;

    if (member.role === 'owner') {
      if (link || disabledAction || newEmail || newName) {
        report(user, 'owner', 'This directory user is an owner of the organization; directory sync never changes owners');
      }
      continue;
    }
    if (disabledAction === 'remove') {
      memberChanges.push({ kind: 'remove', memberId: member.id, externalId: user.externalId, email: member.email, reason: 'disabled' });
      removedMembers.set(member.id, member.status);
      continue;
    }
    if (link) {
      memberChanges.push({
        kind: 'link',
        memberId: member.id,
        externalId: user.externalId,
        email: member.email,
        ...(newName !== undefined ? { name: newName } : {}),
      });
    } else if (newEmail !== undefined || newName !== undefined) {
      const holder = newEmail !== undefined ? byEmail.get(newEmail) : undefined;
      if (holder && holder.id !== member.id) {
        report(user, 'emailTaken', `Another member already has the email ${newEmail}; the email change is not applied`);
      }
      const applyEmail = newEmail !== undefined && !holder;
      if (applyEmail || newName !== undefined) {
        memberChanges.push({
          kind: 'update',
          memberId: member.id,
          externalId: user.externalId,
          ...(applyEmail ? { email: newEmail } : {}),
          ...(newName !== undefined ? { name: newName } : {}),
        });
      }
    }
    if (disabledAction === 'revoke') {
      memberChanges.push({ kind: 'revoke', memberId: member.id, externalId: user.externalId, email: member.email, reason: 'disabled' });
    }
    if (disabledAction === 'restore') {
      memberChanges.push({ kind: 'restore', memberId: member.id, externalId: user.externalId, email: member.email });
    }
    held[i] = 1;
    heldExternalId.set(member.id, user.externalId);
  }

  // Members whose external id the directory no longer has.
  const known = current.members.filter((m) => m.externalId !== null);
  const missing = known.filter((m) => !userIndex.has(m.externalId!));
  if (options.removeMissing) {
    for (const m of missing) {
      if (m.role === 'owner') {
        problems.push({
          externalId: m.externalId!,
          email: m.email,
          code: 'owner',
          message: 'This owner is no longer in the directory; directory sync never removes owners',
        });
        continue;
      }
      memberChanges.push({ kind: 'remove', memberId: m.id, externalId: m.externalId!, email: m.email, reason: 'missing' });
      removedMembers.set(m.id, m.status);
    }
  }

  // The guard: a read that came back empty, or missing too many of the people it had, is more
  // likely a bad filter, a wrong base DN or a recycle bin than a mass departure. Nothing destructive.
  let guard: string | undefined;
  if (known.length > 0 && snapshot.users.length === 0) {
    guard = `The directory returned no users while ${known.length} member(s) are linked to it; nobody was removed or revoked`;
  } else if (options.removeMissing && known.length > 0 && (missing.length * 100) / known.length > options.shrinkGuardPercent) {
    const percent = Math.round((missing.length * 1000) / known.length) / 10;
    guard =
      `${missing.length} of ${known.length} linked member(s) (${percent}%) are missing from the directory, more than the ` +
      `${options.shrinkGuardPercent}% threshold; nobody was removed or revoked`;
  }
  let kept = guard ? memberChanges.filter((c) => c.kind !== 'remove' && c.kind !== 'revoke') : memberChanges;
  if (guard) removedMembers.clear();

  // Seats: freed by removals and revocations, taken by restores and invitations, in that order.
  let free = current.seats - current.seatsUsed;
  for (const c of kept) {
    if (c.kind === 'revoke') free += 1;
    if (c.kind === 'remove' && removedMembers.get(c.memberId) !== 'revoked') free += 1;
  }
  kept = kept.filter((c) => {
    if (c.kind !== 'restore') return true;
    if (free > 0) return (free -= 1), true;
    problems.push({ externalId: c.externalId, email: c.email, code: 'seatShortage', message: 'No free seat to restore this member' });
    return false;
  });
  const invited = invites.filter((c) => {
    if (free > 0) return (free -= 1), true;
    problems.push({ externalId: c.externalId, email: c.email, code: 'seatShortage', message: `No free seat to invite ${c.email}` });
    held[userIndex.get(c.externalId)!] = 0;
    return false;
  });

  // Members that will hold no external id group members can name (no external id, or one no user
  // read keeps) are taken out of every directory group; owners and members removed are left alone.
  const unheld = new Set<string>();
  for (const m of current.members) {
    if (m.role !== 'owner' && !removedMembers.has(m.id) && !heldExternalId.has(m.id)) unheld.add(m.id);
  }

  const groupChanges = planGroups(current, snapshot, {
    isHeld,
    heldExternalId,
    unheld,
    keepExtraMembers: guard !== undefined,
    problems,
  });

  const order = new Map(DIRECTORY_CHANGE_ORDER.map((kind, i) => [kind, i]));
  const changes = [...kept, ...invited, ...groupChanges].sort((a, b) => order.get(a.kind)! - order.get(b.kind)!);
  for (const warning of snapshot.warnings) problems.push({ code: 'readWarning', message: warning });

  const plan: Plan = { changes, problems };
  if (guard) plan.guard = guard;
  if (changes.length > LARGE_IMPORT && !options.largeImport) {
    plan.tooLarge =
      `This run would make ${changes.length} changes, more than ${LARGE_IMPORT}; nothing was applied. ` +
      'Enable the large-import option to allow it';
  }
  return plan;
}

function planGroups(
  current: DirectoryState,
  snapshot: DirectorySnapshot,
  context: {
    isHeld: (externalId: string) => boolean;
    /** The external id a member will hold, by member id; absent for owners and members removed. */
    heldExternalId: Map<string, string>;
    /** Members that will hold no external id group members can name (taken out of directory groups). */
    unheld: Set<string>;
    /** Guarded: group members are only added, never taken out. */
    keepExtraMembers: boolean;
    problems: SyncProblem[];
  },
): PlannedChange[] {
  const { isHeld, heldExternalId, unheld, problems } = context;
  const externalIdCount = countBy(snapshot.groups.map((g) => g.externalId));
  const nameCount = countBy(snapshot.groups.map((g) => g.name.toLowerCase()));
  const flattened = flattenGroups(snapshot.groups);
  const byExternalId = new Map(current.groups.flatMap((g) => (g.externalId !== null ? [[g.externalId, g] as const] : [])));
  const byName = new Map(current.groups.map((g) => [g.name.toLowerCase(), g]));
  const changes: PlannedChange[] = [];
  const reportGroup = (group: { externalId: string; dn: string }, code: SyncProblemCode, message: string) =>
    problems.push({ externalId: group.externalId, dn: group.dn, code, message });

  for (const group of snapshot.groups) {
    if ((externalIdCount.get(group.externalId) ?? 0) > 1) {
      reportGroup(group, 'duplicateGroupExternalId', `Several directory groups have the external id ${group.externalId}`);
      continue;
    }
    // Members that will exist after this plan; owners are never added to or taken out of groups.
    const reachable = flattened.get(group.externalId);
    const wantedOf = (skip?: Set<string>) => {
      const out: string[] = [];
      if (reachable) for (const e of reachable) if (isHeld(e) && !skip?.has(e)) out.push(e);
      return out.sort();
    };
    const existing = byExternalId.get(group.externalId);
    const nameClash = (nameCount.get(group.name.toLowerCase()) ?? 0) > 1;
    const holder = byName.get(group.name.toLowerCase());
    const nameTaken = holder !== undefined && holder.externalId !== group.externalId;
    if (nameClash) reportGroup(group, 'duplicateGroupName', `Several directory groups are named ${group.name}`);
    else if (nameTaken && (!existing || existing.name !== group.name)) {
      reportGroup(group, 'groupNameTaken', `Another group of the organization is named ${group.name}`);
    }
    if (!existing) {
      if (!nameClash && !nameTaken) changes.push({ kind: 'createGroup', externalId: group.externalId, name: group.name, members: wantedOf() });
      continue;
    }
    if (existing.name !== group.name && !nameClash && !nameTaken) {
      changes.push({ kind: 'renameGroup', groupId: existing.id, externalId: group.externalId, name: group.name });
    }
    const has = new Set<string>();
    const remove: string[] = [];
    const members = current.groupMembers.get(existing.id) ?? [];
    for (const memberId of members) {
      const externalId = heldExternalId.get(memberId);
      if (externalId !== undefined) {
        if (reachable?.has(externalId)) has.add(externalId);
        else remove.push(memberId);
      } else if (unheld.has(memberId)) remove.push(memberId);
    }
    // The wanted members not in the group yet, sorted (as the sorted wanted list filtered). When
    // the group already has every member reachable from it, none is missing.
    const add = has.size === (reachable?.size ?? 0) ? [] : wantedOf(has);
    const removals = context.keepExtraMembers ? [] : remove.sort();
    if (add.length > 0 || removals.length > 0) {
      changes.push({ kind: 'groupMembers', groupId: existing.id, externalId: group.externalId, add, remove: removals });
    }
  }
  return changes;
}

const normalize = (email: string | null): string | null => {
  const trimmed = email?.trim().toLowerCase();
  return trimmed ? trimmed : null;
};

function countBy(values: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}
