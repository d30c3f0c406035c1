/**
 * The reconcile engine over the membership engine and a real database: snapshots are plain
 * objects (no LDAP here; the connectors have their own suites).
 */
import { and, count, eq, ne } from 'drizzle-orm';
import { expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { reconcile, BATCH_SIZE } from '../../src/sync/reconcile.js';
import type { ReconcileOptions } from '../../src/sync/plan.js';
import type { DirectoryGroup, DirectorySnapshot, DirectoryUser } from '../../src/sync/source.js';
import { describeEachDriver } from '../support/db.js';
import { OPERATOR, useWorld, type World } from '../support/world.js';

const OPTIONS: ReconcileOptions & { dryRun: boolean } = {
  disabledUsers: 'revoke',
  removeMissing: false,
  shrinkGuardPercent: 10,
  largeImport: false,
  dryRun: false,
};

const user = (externalId: string, over: Partial<DirectoryUser> = {}): DirectoryUser => ({
  externalId,
  dn: `uid=${externalId},ou=people,dc=contoso,dc=example`,
  email: `${externalId}@contoso.example`,
  name: `User ${externalId}`,
  disabled: false,
  ...over,
});
const group = (externalId: string, memberExternalIds: string[], over: Partial<DirectoryGroup> = {}): DirectoryGroup => ({
  externalId,
  dn: `cn=${externalId},ou=groups,dc=contoso,dc=example`,
  name: `Group ${externalId}`,
  memberExternalIds,
  groupExternalIds: [],
  ...over,
});
const snap = (users: DirectoryUser[], groups: DirectoryGroup[] = []): DirectorySnapshot => ({ users, groups, warnings: [] });

describeEachDriver('reconcile', (driver) => {
  const world = useWorld(driver);

  async function setUp(w: World, seats = 20) {
    const client = await w.managedClient({ seats, plan: 'teams' });
    const handle = await w.engine.directorySync(client.org.id);
    return { client, handle, orgId: client.org.id };
  }
  async function membersOf(w: World, orgId: string) {
    const m = schema.members;
    return w.db.select().from(m).where(eq(m.organizationId, orgId)).orderBy(m.email);
  }
  async function seatsUsed(w: World, orgId: string) {
    const [org] = await w.db.select().from(schema.organizations).where(eq(schema.organizations.id, orgId));
    const m = schema.members;
    const [counted] = await w.db.select({ n: count() }).from(m).where(and(eq(m.organizationId, orgId), ne(m.status, 'revoked')));
    expect(org!.seatsUsed).toBe(counted!.n); // the counter stays true
    return org!.seatsUsed;
  }

  it('a first sync invites each user with a mail and a group, each change an event of the directorySync actor', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w);
    const before = await w.eventCount();
    const result = await reconcile(
      handle,
      snap([user('u1', { email: 'Ann@Contoso.example' }), user('u2'), user('u3', { email: null })], [group('g1', ['u1', 'u2', 'u3'])]),
      OPTIONS,
    );
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 3, invited: 2, groupsCreated: 1, problems: 1 });
    expect(result.problems).toEqual([expect.objectContaining({ externalId: 'u3', code: 'missingEmail' })]);

    const members = await membersOf(w, orgId);
    expect(members.map((m) => [m.email, m.externalId, m.status, m.role])).toEqual([
      ['ann@contoso.example', 'u1', 'invited', 'user'],
      ['u2@contoso.example', 'u2', 'invited', 'user'],
    ]);
    expect(await seatsUsed(w, orgId)).toBe(2);
    // The invitation mail, with a token that accepts the invitation.
    const [mail] = await w.engine.listOutbox(OPERATOR, { recipient: 'ann@contoso.example' });
    expect(mail!.subject).toMatch(/Join Contoso/);
    const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('ann@contoso.example') });
    expect(accepted.member?.status).toBe('accepted');

    const [g] = await w.db.select().from(schema.groups).where(eq(schema.groups.organizationId, orgId));
    const gm = await w.db.select().from(schema.groupMembers).where(eq(schema.groupMembers.groupId, g!.id));
    expect(gm.map((r) => r.memberId).sort()).toEqual(members.map((m) => m.id).sort());

    const events = (await w.eventRows()).slice(before).filter((e) => e.actorSystem === 'directorySync');
    expect(events.map((e) => e.type).sort()).toEqual(['group.created', 'member.invited', 'member.invited']);
    expect(events.every((e) => e.organizationId === orgId)).toBe(true);
  });

  it('a resync with no change writes nothing, not even an event', async () => {
    const w = world();
    const { handle } = await setUp(w);
    const directory = snap([user('u1'), user('u2')], [group('g1', ['u1'])]);
    await reconcile(handle, directory, OPTIONS);
    const before = await w.snapshot();
    const again = await reconcile(handle, directory, OPTIONS);
    expect(again.status).toBe('succeeded');
    expect(again.counts).toEqual({
      read: 2,
      invited: 0,
      linked: 0,
      updated: 0,
      revoked: 0,
      restored: 0,
      removed: 0,
      groupsCreated: 0,
      groupsUpdated: 0,
      problems: 0,
    });
    expect(await w.snapshot()).toEqual(before);
  });

  it('links a member invited by hand by email, then follows its email change; an invited member is mailed at the new address', async () => {
    const w = world();
    const { client, handle, orgId } = await setUp(w);
    const { member } = await w.addMember(orgId, client.admin.principal, { email: 'Bob@contoso.example', status: 'invited' });
    const oldToken = await w.mailedToken('bob@contoso.example');
    const linked = await reconcile(handle, snap([user('u1', { email: 'bob@contoso.example' })]), OPTIONS);
    expect(linked.counts).toMatchObject({ linked: 1, invited: 0 });
    expect((await membersOf(w, orgId))[0]).toMatchObject({ id: member.id, externalId: 'u1', name: 'User u1' });

    const moved = await reconcile(handle, snap([user('u1', { email: 'Robert@contoso.example' })]), OPTIONS);
    expect(moved.counts).toMatchObject({ updated: 1 });
    expect((await membersOf(w, orgId))[0]).toMatchObject({ id: member.id, email: 'robert@contoso.example', status: 'invited' });
    // The old mailbox's token no longer accepts; the new address got one that does.
    await expect(w.engine.acceptInvitation({ token: oldToken })).rejects.toMatchObject({ code: 'invitation.invalid' });
    const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('robert@contoso.example') });
    expect(accepted.member?.id).toBe(member.id);
  });

  it('revokes a disabled user (freeing its seat) and restores it once re-enabled; removes it with disabledUsers: remove', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w);
    await reconcile(handle, snap([user('u1'), user('u2')]), OPTIONS);
    const off = await reconcile(handle, snap([user('u1', { disabled: true }), user('u2')]), OPTIONS);
    expect(off.counts).toMatchObject({ revoked: 1 });
    expect((await membersOf(w, orgId)).map((m) => m.status)).toEqual(['revoked', 'invited']);
    expect(await seatsUsed(w, orgId)).toBe(1);

    const on = await reconcile(handle, snap([user('u1'), user('u2')]), OPTIONS);
    expect(on.counts).toMatchObject({ restored: 1 });
    expect((await membersOf(w, orgId)).map((m) => m.status)).toEqual(['invited', 'invited']);
    expect(await seatsUsed(w, orgId)).toBe(2);

    const removed = await reconcile(handle, snap([user('u1', { disabled: true }), user('u2')]), { ...OPTIONS, disabledUsers: 'remove', shrinkGuardPercent: 50 });
    expect(removed.counts).toMatchObject({ removed: 1 });
    expect((await membersOf(w, orgId)).map((m) => m.externalId)).toEqual(['u2']);
    expect(await seatsUsed(w, orgId)).toBe(1);
    const types = (await w.eventRows()).filter((e) => e.actorSystem === 'directorySync').map((e) => e.type);
    expect(types).toEqual(['member.invited', 'member.invited', 'member.revoked', 'member.restored', 'member.removed']);
  });

  it('members gone from the directory are removed only with removeMissing', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w);
    const users = Array.from({ length: 10 }, (_, i) => user(`u${i}`));
    await reconcile(handle, snap(users), OPTIONS);
    const kept = await reconcile(handle, snap(users.slice(1)), OPTIONS);
    expect(kept.counts.removed).toBe(0);
    expect(await membersOf(w, orgId)).toHaveLength(10);
    const removed = await reconcile(handle, snap(users.slice(1)), { ...OPTIONS, removeMissing: true });
    expect(removed.status).toBe('succeeded');
    expect(removed.counts.removed).toBe(1);
    expect((await membersOf(w, orgId)).map((m) => m.externalId)).not.toContain('u0');
    expect(await seatsUsed(w, orgId)).toBe(9);
  });

  it('an owner is never touched: reported, and left as it was', async () => {
    const w = world();
    const { client, handle, orgId } = await setUp(w);
    const owner = await w.addMember(orgId, client.admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
    const before = await w.snapshot();
    const result = await reconcile(
      handle,
      snap([user('o1', { email: 'olivia@contoso.example', disabled: true })]),
      { ...OPTIONS, disabledUsers: 'remove', removeMissing: true },
    );
    expect(result.problems).toEqual([expect.objectContaining({ externalId: 'o1', code: 'owner' })]);
    expect(await w.snapshot()).toEqual(before);
    // And the engine itself refuses, whatever a caller plans.
    const outcome = await handle.applyBatch([
      { kind: 'remove', memberId: owner.member.id, externalId: 'o1', email: owner.member.email, reason: 'missing' },
      { kind: 'revoke', memberId: owner.member.id, externalId: 'o1', email: owner.member.email, reason: 'disabled' },
      { kind: 'link', memberId: owner.member.id, externalId: 'o1', email: owner.member.email },
    ]);
    expect(outcome.applied).toEqual([]);
    expect(outcome.refused.map((r) => r.code)).toEqual(['owner', 'owner', 'owner']);
    expect(await w.snapshot()).toEqual(before);
  });

  it('a seat shortage is reported per user and the run fails; everything that fits is applied', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w, 3);
    const result = await reconcile(handle, snap(['a', 'b', 'c', 'd', 'e'].map((id) => user(id))), OPTIONS);
    expect(result.status).toBe('failed');
    expect(result.message).toMatch(/2 user\(s\) were not invited or restored: the organization has no free seat/);
    expect(result.counts).toMatchObject({ invited: 3, problems: 2 });
    expect(result.problems.map((p) => [p.code, p.externalId])).toEqual([
      ['seatShortage', 'd'],
      ['seatShortage', 'e'],
    ]);
    expect(await seatsUsed(w, orgId)).toBe(3);
  });

  it('the engine refuses invitations beyond the free seats per item, under the lock, and applies the rest', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w, 2);
    const outcome = await handle.applyBatch(
      ['a', 'b', 'c'].map((id) => ({ kind: 'invite' as const, externalId: id, email: `${id}@contoso.example`, name: null })),
    );
    expect(outcome.applied.map((c) => c.kind === 'invite' && c.externalId)).toEqual(['a', 'b']);
    expect(outcome.refused).toEqual([expect.objectContaining({ code: 'seatShortage' })]);
    expect(await seatsUsed(w, orgId)).toBe(2);
  });

  it('the engine refuses a duplicate or invalid address per item and applies the rest', async () => {
    const w = world();
    const { client, handle, orgId } = await setUp(w);
    await w.addMember(orgId, client.admin.principal, { email: 'taken@contoso.example', status: 'invited' });
    const outcome = await handle.applyBatch([
      { kind: 'invite', externalId: 'a', email: 'TAKEN@contoso.example', name: null },
      { kind: 'invite', externalId: 'b', email: 'twice@contoso.example', name: null },
      { kind: 'invite', externalId: 'c', email: 'twice@contoso.example', name: null },
      { kind: 'invite', externalId: 'd', email: 'no at sign', name: null },
      { kind: 'invite', externalId: 'e', email: 'fine@contoso.example', name: null },
    ]);
    expect(outcome.refused.map((r) => r.code)).toEqual(['emailTaken', 'duplicateEmail', 'duplicateEmail', 'invalidEmail']);
    expect(outcome.applied).toHaveLength(1);
    expect((await membersOf(w, orgId)).map((m) => m.email)).toEqual(['fine@contoso.example', 'taken@contoso.example']);
  });

  it('renames a group and replaces its members with the directory\'s, nested groups flattened', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w);
    const users = [user('u1'), user('u2'), user('u3')];
    await reconcile(handle, snap(users, [group('g1', ['u1', 'u2']), group('g2', ['u3'])]), OPTIONS);
    const result = await reconcile(
      handle,
      snap(users, [group('g1', ['u2'], { name: 'Renamed', groupExternalIds: ['g2'] }), group('g2', ['u3'], { groupExternalIds: ['g1'] })]),
      OPTIONS,
    );
    expect(result.counts).toMatchObject({ groupsUpdated: 2, groupsCreated: 0 });
    const g = schema.groups;
    const [g1] = await w.db.select().from(g).where(and(eq(g.organizationId, orgId), eq(g.externalId, 'g1')));
    expect(g1!.name).toBe('Renamed');
    const rows = await w.db
      .select({ externalId: schema.members.externalId })
      .from(schema.groupMembers)
      .innerJoin(schema.members, eq(schema.members.id, schema.groupMembers.memberId))
      .where(eq(schema.groupMembers.groupId, g1!.id));
    expect(rows.map((r) => r.externalId).sort()).toEqual(['u2', 'u3']);
    const again = await reconcile(
      handle,
      snap(users, [group('g1', ['u2'], { name: 'Renamed', groupExternalIds: ['g2'] }), group('g2', ['u3'], { groupExternalIds: ['g1'] })]),
      OPTIONS,
    );
    expect(again.counts.groupsUpdated).toBe(0);
  });

  it('a crash between batches leaves a consistent state that the next run completes', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w, 1000);
    const users = Array.from({ length: BATCH_SIZE + 100 }, (_, i) => user(`u${String(i).padStart(4, '0')}`));
    const directory = snap(users, [group('all', users.map((u) => u.externalId))]);
    const crashed = await reconcile(handle, directory, OPTIONS, { stopAfterBatches: 1 });
    expect(crashed.counts.invited).toBe(BATCH_SIZE);
    expect(await seatsUsed(w, orgId)).toBe(BATCH_SIZE);

    const progress: [number, number][] = [];
    const resumed = await reconcile(handle, directory, OPTIONS, { onProgress: (done, total) => progress.push([done, total]) });
    expect(resumed.status).toBe('succeeded');
    expect(resumed.counts).toMatchObject({ invited: 100, groupsCreated: 1 });
    expect(progress).toEqual([[101, 101]]);
    expect(await membersOf(w, orgId)).toHaveLength(BATCH_SIZE + 100);
    const [g] = await w.db.select().from(schema.groups).where(eq(schema.groups.organizationId, orgId));
    const [n] = await w.db.select({ n: count() }).from(schema.groupMembers).where(eq(schema.groupMembers.groupId, g!.id));
    expect(n!.n).toBe(BATCH_SIZE + 100);

    const before = await w.snapshot();
    const settled = await reconcile(handle, directory, OPTIONS);
    expect(settled.counts).toMatchObject({ invited: 0, groupsCreated: 0, groupsUpdated: 0 });
    expect(await w.snapshot()).toEqual(before);
  });

  it('a dry run returns the planned changes and changes nothing', async () => {
    const w = world();
    const { handle } = await setUp(w);
    await reconcile(handle, snap([user('u1'), user('u2')]), OPTIONS);
    const before = await w.snapshot();
    const dry = await reconcile(handle, snap([user('u1', { disabled: true }), user('u3')], [group('g', ['u3'])]), {
      ...OPTIONS,
      removeMissing: true,
      shrinkGuardPercent: 50,
      dryRun: true,
    });
    expect(dry.changes?.map((c) => c.kind)).toEqual(['remove', 'revoke', 'invite', 'createGroup']);
    expect(dry.counts).toMatchObject({ invited: 1, revoked: 1, removed: 1, groupsCreated: 1 });
    expect(await w.snapshot()).toEqual(before);
  });

  it('an empty read removes and revokes nobody and ends guarded with the reason', async () => {
    const w = world();
    const { handle } = await setUp(w);
    await reconcile(handle, snap([user('u1'), user('u2')]), OPTIONS);
    const before = await w.snapshot();
    const result = await reconcile(handle, snap([]), { ...OPTIONS, removeMissing: true });
    expect(result.status).toBe('guarded');
    expect(result.message).toMatch(/no users while 2 member\(s\) are linked/);
    expect(await w.snapshot()).toEqual(before);
  });

  it('a shrunk read still applies what is not destructive', async () => {
    const w = world();
    const { handle, orgId } = await setUp(w);
    const users = Array.from({ length: 10 }, (_, i) => user(`u${i}`));
    await reconcile(handle, snap(users), OPTIONS);
    const result = await reconcile(handle, snap([...users.slice(5), user('new')]), { ...OPTIONS, removeMissing: true });
    expect(result.status).toBe('guarded');
    expect(result.counts).toMatchObject({ invited: 1, removed: 0 });
    expect(await membersOf(w, orgId)).toHaveLength(11);
  });

  it('more than 2,000 changes without largeImport fail and apply nothing', async () => {
    const w = world();
    const { handle } = await setUp(w, 5000);
    const before = await w.snapshot();
    const result = await reconcile(handle, snap(Array.from({ length: 2001 }, (_, i) => user(`u${i}`))), OPTIONS);
    expect(result.status).toBe('failed');
    expect(result.message).toMatch(/Enable the large-import option/);
    expect(await w.snapshot()).toEqual(before);
  });

  it('a disabled organization is refused', async () => {
    const w = world();
    const { orgId } = await setUp(w);
    await w.db.update(schema.organizations).set({ enabled: false }).where(eq(schema.organizations.id, orgId));
    await expect(w.engine.directorySync(orgId)).rejects.toMatchObject({ code: 'organization.disabled' });
  });
});
