/**
 * Groups and collections (domain.md "Groups and collections", "Plan features"): CRUD, references
 * kept inside the organization, group membership changes, access, and what each plan includes.
 */
import { describe, expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { expectCode, OPERATOR, useWorld, type World } from '../support/world.js';

describeEachDriver('groups and collections', (driver) => {
  const world = useWorld(driver);

  /** Two clients of one provider; the first administered by its provider admin. */
  async function twoClients(w: World, plan: 'teams' | 'enterprise' = 'enterprise') {
    const client = await w.managedClient({ plan, seats: 20 });
    const other = await w.createClient(client.provider.id, client.admin.principal, { name: 'Fabrikam', plan });
    const handle = await w.engine.organization(client.org.id, client.admin.principal);
    const otherHandle = await w.engine.organization(other.id, client.admin.principal);
    return { ...client, other, handle, otherHandle };
  }

  describe('collections', () => {
    it('are created, listed, read, renamed and deleted', async () => {
      const w = world();
      const { handle } = await twoClients(w);
      const created = await handle.createCollection({ name: 'Finance', externalId: 'fin' });
      expect(created).toMatchObject({ name: 'Finance', externalId: 'fin' });
      expect(await handle.getCollection(created.id)).toEqual(created);
      const renamed = await handle.updateCollection(created.id, { name: 'Finance EU', externalId: null });
      expect(renamed).toMatchObject({ id: created.id, name: 'Finance EU', externalId: null });
      expect(await handle.listCollections()).toEqual([renamed]);
      await handle.deleteCollection(created.id);
      expect(await handle.listCollections()).toEqual([]);
      await expectCode(() => handle.getCollection(created.id), 'collection.not_found');
    });

    it('an externalId is unique within the organization only', async () => {
      const w = world();
      const { handle, otherHandle } = await twoClients(w);
      await handle.createCollection({ name: 'A', externalId: 'x-1' });
      await w.expectRefusedUnchanged(() => handle.createCollection({ name: 'B', externalId: 'x-1' }), 'conflict');
      await expect(otherHandle.createCollection({ name: 'A', externalId: 'x-1' })).resolves.toMatchObject({ externalId: 'x-1' });
    });

    it("another organization's collection is not found here and cannot be changed from here", async () => {
      const w = world();
      const { handle, otherHandle } = await twoClients(w);
      const foreign = await otherHandle.createCollection({ name: 'Theirs' });
      await expectCode(() => handle.getCollection(foreign.id), 'collection.not_found');
      await w.expectRefusedUnchanged(() => handle.updateCollection(foreign.id, { name: 'Mine' }), 'collection.not_found');
      await w.expectRefusedUnchanged(() => handle.deleteCollection(foreign.id), 'collection.not_found');
    });

    it('each collection change needs its own flag: create, edit and delete any collection', async () => {
      const w = world();
      const { org, handle } = await twoClients(w);
      const existing = await handle.createCollection({ name: 'Existing' });
      const creator = await w.addMember(org.id, OPERATOR, {
        email: 'cr@contoso.example',
        role: 'custom',
        permissions: { createNewCollections: true },
      });
      const asCreator = await w.engine.organization(org.id, creator.person!.principal);
      await expect(asCreator.createCollection({ name: 'New' })).resolves.toMatchObject({ name: 'New' });
      await w.expectRefusedUnchanged(() => asCreator.updateCollection(existing.id, { name: 'X' }), 'auth.permission_denied');
      await w.expectRefusedUnchanged(() => asCreator.deleteCollection(existing.id), 'auth.permission_denied');
    });
  });

  describe('groups', () => {
    it('are created with members and collection access, listed, read, changed and deleted', async () => {
      const w = world();
      const { org, admin, handle } = await twoClients(w);
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example' });
      const erin = await w.addMember(org.id, admin.principal, { email: 'erin@contoso.example', status: 'invited' });
      const finance = await handle.createCollection({ name: 'Finance' });

      const group = await handle.createGroup({
        name: 'Accounting',
        externalId: 'acc',
        members: [dave.member.id, erin.member.id, dave.member.id],
        collections: [{ id: finance.id, readOnly: true, hidePasswords: true, manage: false }],
      });
      expect(group).toMatchObject({
        name: 'Accounting',
        externalId: 'acc',
        members: [dave.member.id, erin.member.id].sort(),
        collections: [{ id: finance.id, readOnly: true, hidePasswords: true, manage: false }],
      });
      expect(await handle.getGroup(group.id)).toEqual(group);
      expect((await handle.listGroups()).map((g) => g.id)).toEqual([group.id]);

      const updated = await handle.updateGroup(group.id, { name: 'Accounts', members: [erin.member.id], collections: [] });
      expect(updated).toMatchObject({ name: 'Accounts', externalId: 'acc', members: [erin.member.id], collections: [] });

      await handle.deleteGroup(group.id);
      expect(await handle.listGroups()).toEqual([]);
      await expectCode(() => handle.getGroup(group.id), 'group.not_found');
      expect((await handle.getMember(erin.member.id)).groups).toEqual([]);
    });

    it('changing group members adds without duplicates and removes only the named members', async () => {
      const w = world();
      const { org, admin, handle } = await twoClients(w);
      const ids: string[] = [];
      for (const name of ['a', 'b', 'c', 'd']) {
        ids.push((await w.addMember(org.id, admin.principal, { email: `${name}@contoso.example`, status: 'invited' })).member.id);
      }
      const [a, b, c, d] = ids as [string, string, string, string];
      const group = await handle.createGroup({ name: 'Team', members: [a, b] });

      await handle.changeGroupMembers(group.id, { add: [b, c, c] });
      expect((await handle.getGroup(group.id)).members).toEqual([a, b, c].sort());

      await handle.changeGroupMembers(group.id, { remove: [a, d] });
      expect((await handle.getGroup(group.id)).members).toEqual([b, c].sort());

      await handle.changeGroupMembers(group.id, { add: [d], remove: [b] });
      expect((await handle.getGroup(group.id)).members).toEqual([c, d].sort());
    });

    it('removing members from one group leaves their other groups alone', async () => {
      const w = world();
      const { org, admin, handle } = await twoClients(w);
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'invited' });
      const one = await handle.createGroup({ name: 'One', members: [dave.member.id] });
      const two = await handle.createGroup({ name: 'Two', members: [dave.member.id] });
      await handle.changeGroupMembers(one.id, { remove: [dave.member.id] });
      expect((await handle.getGroup(two.id)).members).toEqual([dave.member.id]);
      expect((await handle.getMember(dave.member.id)).groups).toEqual([two.id]);
    });

    it("member ids of another organization are refused as invalid input and never linked", async () => {
      const w = world();
      const { org, admin, other, handle } = await twoClients(w);
      const mine = await w.addMember(org.id, admin.principal, { email: 'mine@contoso.example', status: 'invited' });
      const theirs = await w.addMember(other.id, admin.principal, { email: 'theirs@fabrikam.example', status: 'invited' });
      const group = await handle.createGroup({ name: 'Team', members: [mine.member.id] });

      await w.expectRefusedUnchanged(
        () => handle.createGroup({ name: 'Sneaky', members: [mine.member.id, theirs.member.id] }),
        'input.invalid',
      );
      await w.expectRefusedUnchanged(() => handle.updateGroup(group.id, { members: [theirs.member.id] }), 'input.invalid');
      await w.expectRefusedUnchanged(() => handle.changeGroupMembers(group.id, { add: [theirs.member.id] }), 'input.invalid');
      await w.expectRefusedUnchanged(() => handle.changeGroupMembers(group.id, { add: ['not-an-id'] }), 'input.invalid');
      expect((await handle.getGroup(group.id)).members).toEqual([mine.member.id]);
    });

    it('collection and group ids of another organization are refused wherever access is granted', async () => {
      const w = world();
      const { org, admin, handle, otherHandle } = await twoClients(w);
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'invited' });
      const group = await handle.createGroup({ name: 'Team' });
      const theirCollection = await otherHandle.createCollection({ name: 'Theirs' });
      const theirGroup = await otherHandle.createGroup({ name: 'Theirs' });
      const access = { id: theirCollection.id, readOnly: false, hidePasswords: false, manage: true };

      for (const change of [
        () => handle.createGroup({ name: 'G2', collections: [access] }),
        () => handle.updateGroup(group.id, { collections: [access] }),
        () => handle.updateMember(dave.member.id, { collections: [access] }),
        () => handle.updateMember(dave.member.id, { groups: [theirGroup.id] }),
        () => handle.inviteMembers({ emails: ['n@contoso.example'], role: 'user', groups: [theirGroup.id] }),
        () => handle.inviteMembers({ emails: ['n@contoso.example'], role: 'user', collections: [access] }),
      ]) {
        await w.expectRefusedUnchanged(change, 'input.invalid');
      }
    });

    it("another organization's group is not found here", async () => {
      const w = world();
      const { handle, otherHandle } = await twoClients(w);
      const theirs = await otherHandle.createGroup({ name: 'Theirs' });
      await expectCode(() => handle.getGroup(theirs.id), 'group.not_found');
      await w.expectRefusedUnchanged(() => handle.updateGroup(theirs.id, { name: 'Mine' }), 'group.not_found');
      await w.expectRefusedUnchanged(() => handle.changeGroupMembers(theirs.id, { add: [] }), 'group.not_found');
      await w.expectRefusedUnchanged(() => handle.deleteGroup(theirs.id), 'group.not_found');
    });

    it('managing groups needs the manageGroups flag', async () => {
      const w = world();
      const { org, handle } = await twoClients(w);
      const group = await handle.createGroup({ name: 'Team' });
      const reporter = await w.addMember(org.id, OPERATOR, { email: 'rep@contoso.example', role: 'custom', permissions: { accessReports: true } });
      const manager = await w.addMember(org.id, OPERATOR, { email: 'gm@contoso.example', role: 'custom', permissions: { manageGroups: true } });
      const asReporter = await w.engine.organization(org.id, reporter.person!.principal);
      for (const change of [
        () => asReporter.createGroup({ name: 'No' }),
        () => asReporter.updateGroup(group.id, { name: 'No' }),
        () => asReporter.changeGroupMembers(group.id, { add: [reporter.member.id] }),
        () => asReporter.deleteGroup(group.id),
      ]) {
        await w.expectRefusedUnchanged(change, 'auth.permission_denied');
      }
      const asManager = await w.engine.organization(org.id, manager.person!.principal);
      await asManager.changeGroupMembers(group.id, { add: [reporter.member.id] });
      expect((await handle.getGroup(group.id)).members).toEqual([reporter.member.id]);
    });
  });

  describe('access', () => {
    it("a member's access is its own plus its groups', each served with its flags", async () => {
      const w = world();
      const { handle } = await twoClients(w);
      const own = await handle.createCollection({ name: 'Own' });
      const shared = await handle.createCollection({ name: 'Shared' });
      const viaGroup = await handle.createCollection({ name: 'Via group' });
      const group = await handle.createGroup({
        name: 'Team',
        collections: [
          { id: viaGroup.id, readOnly: false, hidePasswords: false, manage: true },
          { id: shared.id, readOnly: true, hidePasswords: true, manage: false },
        ],
      });
      const { invited } = await handle.inviteMembers({
        emails: ['dave@contoso.example'],
        role: 'user',
        groups: [group.id],
        collections: [
          { id: own.id, readOnly: true, hidePasswords: false, manage: false },
          { id: shared.id, readOnly: false, hidePasswords: false, manage: false },
        ],
      });
      const dave = await handle.getMember(invited[0]!.id);
      expect(dave.groups).toEqual([group.id]);
      const groups = await Promise.all(dave.groups!.map((id) => handle.getGroup(id)));
      const byCollection = new Map<string, object[]>();
      for (const a of [...dave.collections!, ...groups.flatMap((g) => g.collections!)]) {
        byCollection.set(a.id, [...(byCollection.get(a.id) ?? []), { readOnly: a.readOnly, hidePasswords: a.hidePasswords, manage: a.manage }]);
      }
      expect(Object.fromEntries(byCollection)).toEqual({
        [own.id]: [{ readOnly: true, hidePasswords: false, manage: false }],
        [shared.id]: [
          { readOnly: false, hidePasswords: false, manage: false },
          { readOnly: true, hidePasswords: true, manage: false },
        ],
        [viaGroup.id]: [{ readOnly: false, hidePasswords: false, manage: true }],
      });
    });

    it("updating a member's collections replaces its own access and leaves its groups' access alone", async () => {
      const w = world();
      const { handle } = await twoClients(w);
      const a = await handle.createCollection({ name: 'A' });
      const b = await handle.createCollection({ name: 'B' });
      const group = await handle.createGroup({ name: 'Team', collections: [{ id: b.id, readOnly: true, hidePasswords: false, manage: false }] });
      const { invited } = await handle.inviteMembers({
        emails: ['dave@contoso.example'],
        role: 'user',
        groups: [group.id],
        collections: [{ id: a.id, readOnly: true, hidePasswords: false, manage: false }],
      });
      const updated = await handle.updateMember(invited[0]!.id, { collections: [{ id: b.id, readOnly: false, hidePasswords: false, manage: true }] });
      expect(updated.collections).toEqual([{ id: b.id, readOnly: false, hidePasswords: false, manage: true }]);
      expect(updated.groups).toEqual([group.id]);
      expect((await handle.getGroup(group.id)).collections).toEqual([{ id: b.id, readOnly: true, hidePasswords: false, manage: false }]);
    });

    it('deleting a collection removes every access to it', async () => {
      const w = world();
      const { handle } = await twoClients(w);
      const c = await handle.createCollection({ name: 'Doomed' });
      const flags = { readOnly: false, hidePasswords: false, manage: false };
      const group = await handle.createGroup({ name: 'Team', collections: [{ id: c.id, ...flags }] });
      const { invited } = await handle.inviteMembers({ emails: ['d@contoso.example'], role: 'user', collections: [{ id: c.id, ...flags }] });
      await handle.deleteCollection(c.id);
      expect((await handle.getGroup(group.id)).collections).toEqual([]);
      expect((await handle.getMember(invited[0]!.id)).collections).toEqual([]);
    });
  });

  describe('plan features', () => {
    it('the Teams plan has groups, collections and events', async () => {
      const w = world();
      const { handle } = await twoClients(w, 'teams');
      const collection = await handle.createCollection({ name: 'C' });
      const group = await handle.createGroup({ name: 'G', collections: [{ id: collection.id, readOnly: true, hidePasswords: false, manage: false }] });
      expect(group.collections).toHaveLength(1);
      const events = await handle.events({});
      expect(events.data.map((e) => e.type)).toEqual(expect.arrayContaining(['group.created', 'collection.created']));
    });

    it('the Teams plan lacks policies and custom roles, and says so', async () => {
      const w = world();
      const { org, admin, handle } = await twoClients(w, 'teams');
      const user = await w.addMember(org.id, admin.principal, { email: 'u@contoso.example' });
      await expectCode(() => handle.listPolicies(), 'organization.plan_feature');
      await w.expectRefusedUnchanged(() => handle.putPolicy({ type: 'singleOrg', enabled: true }), 'organization.plan_feature');
      await w.expectRefusedUnchanged(
        () => handle.inviteMembers({ emails: ['c@contoso.example'], role: 'custom', permissions: { manageGroups: true } }),
        'organization.plan_feature',
      );
      await w.expectRefusedUnchanged(() => handle.updateMember(user.member.id, { role: 'custom' }), 'organization.plan_feature');
    });

    it('the Enterprise plan adds policies and custom roles', async () => {
      const w = world();
      const { handle } = await twoClients(w, 'enterprise');
      await expect(handle.putPolicy({ type: 'singleOrg', enabled: true })).resolves.toMatchObject({ enabled: true });
      await expect(handle.inviteMembers({ emails: ['c@contoso.example'], role: 'custom', permissions: { manageGroups: true } })).resolves.toMatchObject({
        invited: [{ role: 'custom', permissions: { manageGroups: true } }],
      });
    });
  });
});
