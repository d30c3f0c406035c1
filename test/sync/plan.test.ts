import { describe, expect, it } from 'vitest';
import type { DirectoryMemberState, DirectoryState } from '../../src/membership/index.js';
import { planChanges, type ReconcileOptions } from '../../src/sync/plan.js';
import { LARGE_IMPORT } from '../../src/sync/settings.js';
import type { DirectoryGroup, DirectorySnapshot, DirectoryUser } from '../../src/sync/source.js';

const OPTIONS: ReconcileOptions = { disabledUsers: 'revoke', removeMissing: false, shrinkGuardPercent: 10, largeImport: false };

let seq = 0;
const id = () => `00000000-0000-4000-8000-${String(++seq).padStart(12, '0')}`;

const user = (externalId: string, over: Partial<DirectoryUser> = {}): DirectoryUser => ({
  externalId,
  dn: `uid=${externalId},ou=people,dc=example,dc=org`,
  email: `${externalId}@example.org`,
  name: externalId.toUpperCase(),
  disabled: false,
  ...over,
});
const member = (over: Partial<DirectoryMemberState> & { email: string }): DirectoryMemberState => ({
  id: id(),
  externalId: null,
  status: 'confirmed',
  role: 'user',
  name: null,
  ...over,
});
/** A member already linked to directory user `externalId`, in step with `user(externalId)`. */
const linked = (externalId: string, over: Partial<DirectoryMemberState> = {}) =>
  member({ email: `${externalId}@example.org`, externalId, name: externalId.toUpperCase(), ...over });

const state = (members: DirectoryMemberState[], over: Partial<DirectoryState> = {}): DirectoryState => ({
  seats: 1000,
  seatsUsed: members.filter((m) => m.status !== 'revoked').length,
  members,
  groups: [],
  groupMembers: new Map(),
  ...over,
});
const snap = (users: DirectoryUser[], groups: DirectoryGroup[] = []): DirectorySnapshot => ({ users, groups, warnings: [] });
const kinds = (plan: { changes: { kind: string }[] }) => plan.changes.map((c) => c.kind);
const codes = (plan: { problems: { code: string; externalId?: string }[] }) => plan.problems.map((p) => `${p.code}:${p.externalId ?? ''}`);

describe('planChanges: users', () => {
  it('invites new users with their email lower-cased and trimmed, and their name', () => {
    const plan = planChanges(state([]), snap([user('u1', { email: '  Ann@Example.ORG ', name: 'Ann' })]), OPTIONS);
    expect(plan.changes).toEqual([{ kind: 'invite', externalId: 'u1', email: 'ann@example.org', name: 'Ann' }]);
    expect(plan.problems).toEqual([]);
  });

  it('a directory in step with the organization plans nothing', () => {
    const plan = planChanges(state([linked('u1'), linked('u2')]), snap([user('u1'), user('u2')]), OPTIONS);
    expect(plan.changes).toEqual([]);
    expect(plan.problems).toEqual([]);
  });

  it('users without an email are reported and not invited', () => {
    const plan = planChanges(state([]), snap([user('u1', { email: null }), user('u2', { email: '  ' })]), OPTIONS);
    expect(plan.changes).toEqual([]);
    expect(codes(plan)).toEqual(['missingEmail:u1', 'missingEmail:u2']);
  });

  it('invalid addresses are reported and not invited', () => {
    const plan = planChanges(state([]), snap([user('u1', { email: 'not-an-address' }), user('u2', { email: 'a b@x.org' })]), OPTIONS);
    expect(plan.changes).toEqual([]);
    expect(codes(plan)).toEqual(['invalidEmail:u1', 'invalidEmail:u2']);
  });

  it('two directory users with one email (in any case) are both reported and neither is applied; the others are', () => {
    const plan = planChanges(
      state([]),
      snap([user('u1', { email: 'Same@example.org' }), user('u2', { email: 'same@example.org' }), user('u3')]),
      OPTIONS,
    );
    expect(plan.changes).toEqual([{ kind: 'invite', externalId: 'u3', email: 'u3@example.org', name: 'U3' }]);
    expect(codes(plan)).toEqual(['duplicateEmail:u1', 'duplicateEmail:u2']);
  });

  it('links a member without an external id found by email, case-insensitively, instead of inviting', () => {
    const m = member({ email: 'Ann@example.org' });
    const plan = planChanges(state([m]), snap([user('u1', { email: 'ann@example.org', name: 'Ann' })]), OPTIONS);
    expect(plan.changes).toEqual([{ kind: 'link', memberId: m.id, externalId: 'u1', email: 'Ann@example.org', name: 'Ann' }]);
  });

  it('never links a member already linked to another directory entry: reported', () => {
    const m = linked('old', { email: 'ann@example.org' });
    const plan = planChanges(state([m]), snap([user('new', { email: 'ann@example.org' })]), OPTIONS);
    expect(plan.changes).toEqual([]);
    expect(codes(plan)).toEqual(['emailTaken:new']);
  });

  it('applies an email change under the same external id', () => {
    const m = linked('u1');
    const plan = planChanges(state([m]), snap([user('u1', { email: 'U1.new@example.org' })]), OPTIONS);
    expect(plan.changes).toEqual([{ kind: 'update', memberId: m.id, externalId: 'u1', email: 'u1.new@example.org' }]);
  });

  it('an email change to an address another member holds is reported, the name change still applies', () => {
    const m = linked('u1');
    const other = member({ email: 'taken@example.org' });
    const plan = planChanges(state([m, other]), snap([user('u1', { email: 'taken@example.org', name: 'New' })]), OPTIONS);
    expect(plan.changes).toEqual([{ kind: 'update', memberId: m.id, externalId: 'u1', name: 'New' }]);
    expect(codes(plan)).toEqual(['emailTaken:u1']);
  });

  it('a linked member whose directory entry lost its email keeps its email (reported, not cleared)', () => {
    const m = linked('u1');
    const plan = planChanges(state([m]), snap([user('u1', { email: null })]), OPTIONS);
    expect(plan.changes).toEqual([]);
    expect(codes(plan)).toEqual(['missingEmail:u1']);
  });

  it('revokes disabled users, or removes them with disabledUsers: remove', () => {
    const a = linked('u1');
    const revoke = planChanges(state([a]), snap([user('u1', { disabled: true })]), OPTIONS);
    expect(revoke.changes).toEqual([{ kind: 'revoke', memberId: a.id, externalId: 'u1', email: a.email, reason: 'disabled' }]);
    const remove = planChanges(state([a]), snap([user('u1', { disabled: true })]), { ...OPTIONS, disabledUsers: 'remove' });
    expect(remove.changes).toEqual([{ kind: 'remove', memberId: a.id, externalId: 'u1', email: a.email, reason: 'disabled' }]);
  });

  it('restores re-enabled users, and leaves revoked disabled ones alone', () => {
    const a = linked('u1', { status: 'revoked' });
    const b = linked('u2', { status: 'revoked' });
    const plan = planChanges(state([a, b]), snap([user('u1'), user('u2', { disabled: true })]), OPTIONS);
    expect(plan.changes).toEqual([{ kind: 'restore', memberId: a.id, externalId: 'u1', email: a.email }]);
  });

  it('a disabled user who is not a member is not invited', () => {
    expect(planChanges(state([]), snap([user('u1', { disabled: true })]), OPTIONS).changes).toEqual([]);
  });

  it('members gone from the directory stay without removeMissing, and are removed with it', () => {
    const members = Array.from({ length: 20 }, (_, i) => linked(`u${i}`));
    const users = members.slice(1).map((m) => user(m.externalId!));
    expect(planChanges(state(members), snap(users), OPTIONS).changes).toEqual([]);
    const plan = planChanges(state(members), snap(users), { ...OPTIONS, removeMissing: true });
    expect(plan.changes).toEqual([{ kind: 'remove', memberId: members[0]!.id, externalId: 'u0', email: members[0]!.email, reason: 'missing' }]);
    expect(plan.guard).toBeUndefined();
  });

  it('"gone" is a set difference on the external id, never on email: a user whose email changed is not removed', () => {
    const a = linked('u1');
    const plan = planChanges(state([a]), snap([user('u1', { email: 'other@example.org' })]), { ...OPTIONS, removeMissing: true });
    expect(kinds(plan)).toEqual(['update']);
  });

  it('members without an external id (invited by hand) are never removed as missing', () => {
    const plan = planChanges(state([member({ email: 'manual@example.org' }), linked('u1')]), snap([user('u1')]), {
      ...OPTIONS,
      removeMissing: true,
    });
    expect(plan.changes).toEqual([]);
  });
});

describe('planChanges: owners are never touched', () => {
  it('an owner that would be updated, revoked, linked or removed is reported and left alone', () => {
    const changed = linked('u1', { role: 'owner' });
    const disabled = linked('u2', { role: 'owner' });
    const unlinked = member({ email: 'u3@example.org', role: 'owner' });
    const gone = linked('u4', { role: 'owner' });
    const steady = linked('u5', { role: 'owner' });
    const plan = planChanges(
      state([changed, disabled, unlinked, gone, steady]),
      snap([user('u1', { email: 'new@example.org' }), user('u2', { disabled: true }), user('u3'), user('u5')]),
      { ...OPTIONS, removeMissing: true, disabledUsers: 'remove', shrinkGuardPercent: 100 },
    );
    expect(plan.changes).toEqual([]);
    expect(codes(plan).sort()).toEqual(['owner:u1', 'owner:u2', 'owner:u3', 'owner:u4']);
  });

  it('owners are neither added to nor taken out of groups', () => {
    const owner = linked('u1', { role: 'owner' });
    const other = linked('u2');
    const g = { id: id(), name: 'Eng', externalId: 'g1' };
    const plan = planChanges(
      state([owner, other], { groups: [g], groupMembers: new Map([[g.id, [owner.id]]]) }),
      snap([user('u1'), user('u2')], [{ externalId: 'g1', dn: 'cn=eng', name: 'Eng', memberExternalIds: ['u2'], groupExternalIds: [] }]),
      OPTIONS,
    );
    expect(plan.changes).toEqual([{ kind: 'groupMembers', groupId: g.id, externalId: 'g1', add: ['u2'], remove: [] }]);
  });
});

describe('planChanges: the guard', () => {
  const members = Array.from({ length: 100 }, (_, i) => linked(`u${i}`));

  it('an empty read while members are linked removes and revokes nobody and says why', () => {
    const plan = planChanges(state(members), snap([]), { ...OPTIONS, removeMissing: true });
    expect(plan.changes).toEqual([]);
    expect(plan.guard).toMatch(/no users while 100 member\(s\) are linked/);
  });

  it('an empty read of an organization that has no linked members is not guarded', () => {
    expect(planChanges(state([member({ email: 'a@example.org' })]), snap([]), { ...OPTIONS, removeMissing: true }).guard).toBeUndefined();
  });

  it('a shrink of exactly the threshold applies; one member more trips the guard and skips every destructive change', () => {
    const at = planChanges(state(members), snap(members.slice(10).map((m) => user(m.externalId!))), { ...OPTIONS, removeMissing: true });
    expect(at.guard).toBeUndefined();
    expect(kinds(at)).toEqual(Array(10).fill('remove'));

    const users = members.slice(11).map((m) => user(m.externalId!));
    users[0] = { ...users[0]!, disabled: true }; // a revocation: destructive too
    users.push(user('new1')); // an invitation: still applied
    users[1] = { ...users[1]!, name: 'Renamed' }; // an update: still applied
    const over = planChanges(state(members), snap(users), { ...OPTIONS, removeMissing: true });
    expect(over.guard).toMatch(/11 of 100 linked member\(s\) \(11%\) are missing .* 10% threshold/);
    expect(kinds(over)).toEqual(['update', 'invite']);
  });

  it('the threshold is configurable', () => {
    const users = members.slice(30).map((m) => user(m.externalId!));
    expect(planChanges(state(members), snap(users), { ...OPTIONS, removeMissing: true, shrinkGuardPercent: 30 }).guard).toBeUndefined();
    expect(planChanges(state(members), snap(users), { ...OPTIONS, removeMissing: true, shrinkGuardPercent: 29 }).guard).toBeDefined();
  });

  it('guarded, group members are only added, never taken out', () => {
    const g = { id: id(), name: 'Eng', externalId: 'g1' };
    const plan = planChanges(
      state(members, { groups: [g], groupMembers: new Map([[g.id, [members[0]!.id, members[50]!.id]]]) }),
      snap([user('u50'), user('u51')], [{ externalId: 'g1', dn: 'cn=eng', name: 'Eng', memberExternalIds: ['u51'], groupExternalIds: [] }]),
      { ...OPTIONS, removeMissing: true },
    );
    expect(plan.guard).toBeDefined();
    expect(plan.changes).toEqual([{ kind: 'groupMembers', groupId: g.id, externalId: 'g1', add: ['u51'], remove: [] }]);
  });
});

describe('planChanges: seats and size', () => {
  it('invitations beyond the free seats are reported per user, after the seats this run frees', () => {
    const gone = linked('gone');
    const disabled = linked('off');
    const revoked = linked('back', { status: 'revoked' });
    const plan = planChanges(
      state([gone, disabled, revoked], { seats: 3 }), // 2 of 3 used
      snap([user('off', { disabled: true }), user('back'), user('n1'), user('n2'), user('n3'), user('n4')]),
      { ...OPTIONS, removeMissing: true, shrinkGuardPercent: 50 },
    );
    // free 1, +1 removal, +1 revocation = 3: the restore and two invites fit.
    expect(kinds(plan)).toEqual(['remove', 'revoke', 'restore', 'invite', 'invite']);
    expect(codes(plan)).toEqual(['seatShortage:n3', 'seatShortage:n4']);
  });

  it(`more than ${LARGE_IMPORT} changes need the large-import option`, () => {
    const users = Array.from({ length: LARGE_IMPORT + 1 }, (_, i) => user(`n${i}`));
    const seats = { seats: 10_000 };
    expect(planChanges(state([], seats), snap(users.slice(1)), OPTIONS).tooLarge).toBeUndefined();
    const plan = planChanges(state([], seats), snap(users), OPTIONS);
    expect(plan.tooLarge).toMatch(/2001 changes, more than 2000; nothing was applied/);
    expect(planChanges(state([], seats), snap(users), { ...OPTIONS, largeImport: true }).tooLarge).toBeUndefined();
  });

  it('orders changes so that seats are freed before they are taken and members exist before their groups', () => {
    const plan = planChanges(
      state([linked('gone'), linked('off')], { seats: 2 }),
      snap([user('off', { disabled: true }), user('n1')], [{ externalId: 'g', dn: 'cn=g', name: 'G', memberExternalIds: ['n1'], groupExternalIds: [] }]),
      { ...OPTIONS, removeMissing: true, shrinkGuardPercent: 50 },
    );
    expect(kinds(plan)).toEqual(['remove', 'revoke', 'invite', 'createGroup']);
  });
});

describe('planChanges: groups', () => {
  const group = (externalId: string, over: Partial<DirectoryGroup> = {}): DirectoryGroup => ({
    externalId,
    dn: `cn=${externalId},ou=groups`,
    name: externalId.toUpperCase(),
    memberExternalIds: [],
    groupExternalIds: [],
    ...over,
  });

  it('creates groups by external id with their flattened user members, cycles included', () => {
    const plan = planChanges(
      state([linked('u1')]),
      snap(
        [user('u1'), user('u2'), user('u3', { email: null })],
        [
          group('a', { memberExternalIds: ['u1'], groupExternalIds: ['b'] }),
          group('b', { memberExternalIds: ['u2', 'u3'], groupExternalIds: ['a'] }),
        ],
      ),
      OPTIONS,
    );
    // u3 has no email: never a member, so in no group.
    expect(plan.changes.filter((c) => c.kind === 'createGroup')).toEqual([
      { kind: 'createGroup', externalId: 'a', name: 'A', members: ['u1', 'u2'] },
      { kind: 'createGroup', externalId: 'b', name: 'B', members: ['u1', 'u2'] },
    ]);
  });

  it('renames a group and replaces its members (members without an external id included)', () => {
    const a = linked('u1');
    const b = linked('u2');
    const manual = member({ email: 'manual@example.org' });
    const g = { id: id(), name: 'Old', externalId: 'g1' };
    const plan = planChanges(
      state([a, b, manual], { groups: [g], groupMembers: new Map([[g.id, [a.id, manual.id]]]) }),
      snap([user('u1'), user('u2')], [group('g1', { name: 'New', memberExternalIds: ['u2'] })]),
      OPTIONS,
    );
    expect(plan.changes).toEqual([
      { kind: 'renameGroup', groupId: g.id, externalId: 'g1', name: 'New' },
      { kind: 'groupMembers', groupId: g.id, externalId: 'g1', add: ['u2'], remove: [a.id, manual.id].sort() },
    ]);
  });

  it('a group in step plans nothing, and a member linked in this run counts as its external id', () => {
    const a = member({ email: 'u1@example.org', name: 'U1' });
    const g = { id: id(), name: 'G1', externalId: 'g1' };
    const plan = planChanges(
      state([a], { groups: [g], groupMembers: new Map([[g.id, [a.id]]]) }),
      snap([user('u1')], [group('g1', { memberExternalIds: ['u1'] })]),
      OPTIONS,
    );
    expect(kinds(plan)).toEqual(['link']);
  });

  it('a group whose name another group holds, or two directory groups with one name, are reported', () => {
    const manual = { id: id(), name: 'Sales', externalId: null };
    const plan = planChanges(
      state([], { groups: [manual] }),
      snap([], [group('g1', { name: 'sales' }), group('g2', { name: 'Ops' }), group('g3', { name: 'OPS' })]),
      OPTIONS,
    );
    expect(plan.changes).toEqual([]);
    expect(codes(plan)).toEqual(['groupNameTaken:g1', 'duplicateGroupName:g2', 'duplicateGroupName:g3']);
  });

  it('groups absent from the directory are left alone', () => {
    const g = { id: id(), name: 'Old', externalId: 'g1' };
    expect(planChanges(state([linked('u1')], { groups: [g] }), snap([user('u1')]), OPTIONS).changes).toEqual([]);
  });
});
