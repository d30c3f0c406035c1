/**
 * Members (domain.md "Members"): statuses and seats, invitations, revoke and restore, who may
 * manage whom, the last confirmed owner, the singleOrg policy, and tenant isolation.
 */
import { describe, expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { expectCode, HOUR, MINUTE, OPERATOR, useWorld, type World } from '../support/world.js';

describeEachDriver('members', (driver) => {
  const world = useWorld(driver);

  /** A managed client with a confirmed member Owner and a confirmed member Admin acting in it. */
  async function clientWithStaff(w: World, input: { seats?: number; plan?: 'teams' | 'enterprise' } = {}) {
    const client = await w.managedClient({ seats: input.seats ?? 20, plan: input.plan ?? 'enterprise' });
    const owner = await w.addMember(client.org.id, client.admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
    const admin = await w.addMember(client.org.id, client.admin.principal, { email: 'adam@contoso.example', role: 'admin' });
    return {
      ...client,
      owner: owner.member,
      ownerPrincipal: owner.person!.principal,
      orgAdmin: admin.member,
      orgAdminPrincipal: admin.person!.principal,
    };
  }

  describe('statuses and seats', () => {
    it('a member goes invited [0] → accepted [1] → confirmed [2], and revoked is [-1]', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const handle = await w.engine.organization(org.id, admin.principal);
      const { invited } = await handle.inviteMembers({ emails: ['Dave@Contoso.example'], role: 'user' });
      expect(invited[0]).toMatchObject({ email: 'dave@contoso.example', status: 'invited', statusCode: 0, role: 'user', roleCode: 2, userId: null });

      const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('dave@contoso.example'), name: 'Dave' });
      expect(accepted.member).toMatchObject({ id: invited[0]!.id, status: 'accepted', statusCode: 1, userId: accepted.user.id, name: 'Dave' });

      const confirmed = await handle.confirmMember(invited[0]!.id);
      expect(confirmed).toMatchObject({ status: 'confirmed', statusCode: 2 });

      const revoked = await handle.revokeMember(invited[0]!.id);
      expect(revoked).toMatchObject({ status: 'revoked', statusCode: -1, previousStatus: 'confirmed' });
    });

    it('roles carry their reference codes: owner [0], admin [1], user [2], custom [4]', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ plan: 'enterprise' });
      const handle = await w.engine.organization(org.id, admin.principal);
      const codes: Record<string, number> = {};
      for (const role of ['owner', 'admin', 'user', 'custom'] as const) {
        const { invited } = await handle.inviteMembers({ emails: [`${role}@contoso.example`], role });
        codes[role] = invited[0]!.roleCode;
      }
      expect(codes).toEqual({ owner: 0, admin: 1, user: 2, custom: 4 });
    });

    it('seats count invited, accepted and confirmed members; revoked members use none', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ seats: 4 });
      await w.addMember(org.id, admin.principal, { email: 'i@contoso.example', status: 'invited' });
      await w.addMember(org.id, admin.principal, { email: 'a@contoso.example', status: 'accepted' });
      await w.addMember(org.id, admin.principal, { email: 'c@contoso.example', status: 'confirmed' });
      await w.addMember(org.id, admin.principal, { email: 'r@contoso.example', status: 'revoked' });
      const handle = await w.engine.organization(org.id, admin.principal);
      // 3 of 4 seats are used: one more fits, then none.
      await handle.inviteMembers({ emails: ['fourth@contoso.example'], role: 'user' });
      await w.expectRefusedUnchanged(
        () => handle.inviteMembers({ emails: ['fifth@contoso.example'], role: 'user' }),
        'organization.seat_limit',
      );
    });

    it('an invitation beyond the seats is refused for the whole batch', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ seats: 3 });
      await w.addMember(org.id, admin.principal, { email: 'first@contoso.example' });
      const handle = await w.engine.organization(org.id, admin.principal);
      await w.expectRefusedUnchanged(
        () => handle.inviteMembers({ emails: ['a@contoso.example', 'b@contoso.example', 'c@contoso.example'], role: 'user' }),
        'organization.seat_limit',
      );
      const { invited } = await handle.inviteMembers({ emails: ['a@contoso.example', 'b@contoso.example'], role: 'user' });
      expect(invited).toHaveLength(2);
    });

    it('emails already members are skipped whatever their case, get no mail and take no seat', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ seats: 2 });
      await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'revoked', revokedFrom: 'invited' });
      await w.addMember(org.id, admin.principal, { email: 'erin@contoso.example' });
      const handle = await w.engine.organization(org.id, admin.principal);
      const outbox = await w.engine.listOutbox(OPERATOR, {});
      const result = await handle.inviteMembers({ emails: ['DAVE@contoso.example', 'new@contoso.example'], role: 'user' });
      expect(result.invited.map((m) => m.email)).toEqual(['new@contoso.example']);
      expect(result.skipped).toEqual(['dave@contoso.example']);
      expect(await w.engine.listOutbox(OPERATOR, {})).toHaveLength(outbox.length + 1);

      // Now full: re-inviting only existing members still answers, skipping them all.
      await expect(handle.inviteMembers({ emails: ['Erin@contoso.example'], role: 'user' })).resolves.toEqual({
        invited: [],
        skipped: ['erin@contoso.example'],
      });
    });

    it('restoring needs a free seat', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ seats: 2 });
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'revoked' });
      await w.addMember(org.id, admin.principal, { email: 'a@contoso.example' });
      await w.addMember(org.id, admin.principal, { email: 'b@contoso.example', status: 'invited' });
      const handle = await w.engine.organization(org.id, admin.principal);
      await w.expectRefusedUnchanged(() => handle.restoreMember(dave.member.id), 'organization.seat_limit');
    });
  });

  describe('revoke and restore', () => {
    it('revoking keeps the row, its groups and access, remembers the previous status and frees the seat', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ seats: 2 });
      const handle = await w.engine.organization(org.id, admin.principal);
      const collection = await handle.createCollection({ name: 'Finance' });
      const group = await handle.createGroup({ name: 'Accounting' });
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example' });
      await handle.updateMember(dave.member.id, {
        groups: [group.id],
        collections: [{ id: collection.id, readOnly: true, hidePasswords: false, manage: false }],
      });
      await w.addMember(org.id, admin.principal, { email: 'erin@contoso.example' });

      await handle.revokeMember(dave.member.id);
      const revoked = await handle.getMember(dave.member.id);
      expect(revoked).toMatchObject({
        status: 'revoked',
        previousStatus: 'confirmed',
        userId: dave.person!.userId,
        groups: [group.id],
        collections: [{ id: collection.id, readOnly: true, hidePasswords: false, manage: false }],
      });
      expect((await handle.getGroup(group.id)).members).toEqual([dave.member.id]);
      // The seat is free again.
      await expect(handle.inviteMembers({ emails: ['frank@contoso.example'], role: 'user' })).resolves.toMatchObject({
        invited: [{ email: 'frank@contoso.example' }],
      });
      // And a revoked member cannot act.
      await expectCode(w.engine.organization(org.id, dave.person!.principal), 'organization.not_found');
    });

    for (const from of ['invited', 'accepted', 'confirmed'] as const) {
      it(`restoring a member revoked while ${from} returns it to ${from} with its groups`, async () => {
        const w = world();
        const { org, admin } = await w.managedClient();
        const handle = await w.engine.organization(org.id, admin.principal);
        const group = await handle.createGroup({ name: 'Team' });
        const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: from });
        await handle.updateMember(dave.member.id, { groups: [group.id] });
        await handle.revokeMember(dave.member.id);

        const restored = await handle.restoreMember(dave.member.id);
        expect(restored).toMatchObject({ status: from, previousStatus: null });
        expect((await handle.getMember(dave.member.id)).groups).toEqual([group.id]);
      });
    }

    it('revoking a revoked member and restoring one that is not revoked are refused', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const handle = await w.engine.organization(org.id, admin.principal);
      const revoked = await w.addMember(org.id, admin.principal, { email: 'r@contoso.example', status: 'revoked' });
      const active = await w.addMember(org.id, admin.principal, { email: 'a@contoso.example' });
      await w.expectRefusedUnchanged(() => handle.revokeMember(revoked.member.id), 'status.invalid');
      await w.expectRefusedUnchanged(() => handle.restoreMember(active.member.id), 'status.invalid');
    });
  });

  describe('invitations', () => {
    it('accepting needs a valid token: unknown, used or expired ones are refused', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const handle = await w.engine.organization(org.id, admin.principal);
      await handle.inviteMembers({ emails: ['dave@contoso.example', 'erin@contoso.example'], role: 'user' });
      const dave = await w.mailedToken('dave@contoso.example');
      const erin = await w.mailedToken('erin@contoso.example');

      await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: 'inv_forged' }), 'invitation.invalid');
      w.clock.advance(120 * HOUR - MINUTE);
      await w.engine.acceptInvitation({ token: dave });
      await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: dave }), 'invitation.invalid');
      w.clock.advance(2 * MINUTE);
      await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: erin }), 'invitation.invalid');
    });

    it('a signed-in person accepts only an invitation sent to its own email', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const handle = await w.engine.organization(org.id, admin.principal);
      await handle.inviteMembers({ emails: ['dave@contoso.example', 'ALICE@msp.example'], role: 'user' });
      const daveToken = await w.mailedToken('dave@contoso.example');

      await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: daveToken }, admin.principal), 'invitation.email_mismatch');
      const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('alice@msp.example') }, admin.principal);
      expect(accepted.member).toMatchObject({ userId: admin.userId, status: 'accepted' });
      await expect(w.engine.acceptInvitation({ token: daveToken })).resolves.toMatchObject({ member: { status: 'accepted' } });
    });

    it('accepting needs the member to be still invited: a revoked invitee cannot accept', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'revoked', revokedFrom: 'invited' });
      const token = await w.mailedToken('dave@contoso.example');
      await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token }), 'status.invalid');
      expect((await (await w.engine.organization(org.id, OPERATOR)).getMember(dave.member.id)).status).toBe('revoked');
    });

    it('a removed invitee cannot accept', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'invited' });
      const token = await w.mailedToken('dave@contoso.example');
      await (await w.engine.organization(org.id, admin.principal)).removeMember(dave.member.id);
      await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token }), 'invitation.invalid');
    });

    it('reinviting works only for invited members, and the earlier token stops working', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const handle = await w.engine.organization(org.id, admin.principal);
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'invited' });
      const accepted = await w.addMember(org.id, admin.principal, { email: 'erin@contoso.example', status: 'accepted' });
      const first = await w.mailedToken('dave@contoso.example');
      w.clock.advance(MINUTE);
      await handle.reinviteMember(dave.member.id);
      const second = await w.mailedToken('dave@contoso.example');
      expect(second).not.toBe(first);
      await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: first }), 'invitation.invalid');
      await w.engine.acceptInvitation({ token: second });
      await w.expectRefusedUnchanged(() => handle.reinviteMember(accepted.member.id), 'status.invalid');
    });

    it('only accepted members can be confirmed', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const handle = await w.engine.organization(org.id, admin.principal);
      const invited = await w.addMember(org.id, admin.principal, { email: 'i@contoso.example', status: 'invited' });
      const confirmed = await w.addMember(org.id, admin.principal, { email: 'c@contoso.example' });
      const revoked = await w.addMember(org.id, admin.principal, { email: 'r@contoso.example', status: 'revoked', revokedFrom: 'accepted' });
      for (const id of [invited.member.id, confirmed.member.id, revoked.member.id]) {
        await w.expectRefusedUnchanged(() => handle.confirmMember(id), 'status.invalid');
      }
    });
  });

  describe('who manages whom', () => {
    it('an admin member cannot create, change, revoke, restore or remove an owner', async () => {
      const w = world();
      const { org, owner, orgAdminPrincipal } = await clientWithStaff(w);
      const operator = await w.engine.organization(org.id, OPERATOR);
      const revokedOwner = await w.addMember(org.id, OPERATOR, { email: 'ro@contoso.example', role: 'owner', status: 'revoked' });
      const user = await w.addMember(org.id, OPERATOR, { email: 'u@contoso.example', role: 'user' });
      const asAdmin = await w.engine.organization(org.id, orgAdminPrincipal);

      const refusals: [string, () => Promise<unknown>][] = [
        ['invite an owner', () => asAdmin.inviteMembers({ emails: ['o2@contoso.example'], role: 'owner' })],
        ['promote to owner', () => asAdmin.updateMember(user.member.id, { role: 'owner' })],
        ['rename an owner', () => asAdmin.updateMember(owner.id, { name: 'Renamed' })],
        ['demote an owner', () => asAdmin.updateMember(owner.id, { role: 'user' })],
        ['revoke an owner', () => asAdmin.revokeMember(owner.id)],
        ['restore an owner', () => asAdmin.restoreMember(revokedOwner.member.id)],
        ['remove an owner', () => asAdmin.removeMember(owner.id)],
      ];
      for (const [what, change] of refusals) {
        await w.expectRefusedUnchanged(change, 'member.owner_required').catch((error: Error) => {
          throw new Error(`an admin could ${what}: ${error.message}`);
        });
      }
      // The admin still manages non-owners.
      await asAdmin.updateMember(user.member.id, { role: 'admin' });
      expect((await operator.getMember(user.member.id)).role).toBe('admin');
    });

    it('an owner member creates, changes, revokes, restores and removes owners', async () => {
      const w = world();
      const { org, owner, ownerPrincipal } = await clientWithStaff(w);
      const asOwner = await w.engine.organization(org.id, ownerPrincipal);
      const second = await w.addMember(org.id, ownerPrincipal, { email: 'o2@contoso.example', role: 'owner' });
      await asOwner.updateMember(second.member.id, { name: 'Second' });
      await asOwner.revokeMember(second.member.id);
      await asOwner.restoreMember(second.member.id);
      await asOwner.updateMember(second.member.id, { role: 'admin' });
      await asOwner.updateMember(second.member.id, { role: 'owner' });
      await asOwner.removeMember(second.member.id);
      const members = await asOwner.listMembers({});
      expect(members.data.map((m) => m.id)).not.toContain(second.member.id);
      expect(members.data.find((m) => m.id === owner.id)!.status).toBe('confirmed');
    });

    it('a custom member with manageUsers cannot touch admins or owners', async () => {
      const w = world();
      const { org, owner, orgAdmin } = await clientWithStaff(w);
      const custom = await w.addMember(org.id, OPERATOR, { email: 'cu@contoso.example', role: 'custom', permissions: { manageUsers: true } });
      const user = await w.addMember(org.id, OPERATOR, { email: 'u@contoso.example' });
      const asCustom = await w.engine.organization(org.id, custom.person!.principal);

      const refusals: [string, string, () => Promise<unknown>][] = [
        ['invite an admin', 'auth.permission_denied', () => asCustom.inviteMembers({ emails: ['a2@contoso.example'], role: 'admin' })],
        ['invite an owner', 'member.owner_required', () => asCustom.inviteMembers({ emails: ['o2@contoso.example'], role: 'owner' })],
        ['promote to admin', 'auth.permission_denied', () => asCustom.updateMember(user.member.id, { role: 'admin' })],
        ['promote to owner', 'member.owner_required', () => asCustom.updateMember(user.member.id, { role: 'owner' })],
        ['change an admin', 'auth.permission_denied', () => asCustom.updateMember(orgAdmin.id, { name: 'X' })],
        ['revoke an admin', 'auth.permission_denied', () => asCustom.revokeMember(orgAdmin.id)],
        ['remove an admin', 'auth.permission_denied', () => asCustom.removeMember(orgAdmin.id)],
        ['revoke an owner', 'member.owner_required', () => asCustom.revokeMember(owner.id)],
        ['remove an owner', 'member.owner_required', () => asCustom.removeMember(owner.id)],
      ];
      for (const [what, code, change] of refusals) {
        await w.expectRefusedUnchanged(change, code).catch((error: Error) => {
          throw new Error(`a custom manager could ${what}: ${error.message}`);
        });
      }
      // It manages users.
      await asCustom.revokeMember(user.member.id);
      await asCustom.restoreMember(user.member.id);
    });

    it('a custom member with manageUsers grants only the flags it holds', async () => {
      const w = world();
      const { org } = await clientWithStaff(w);
      const custom = await w.addMember(org.id, OPERATOR, {
        email: 'cu@contoso.example',
        role: 'custom',
        permissions: { manageUsers: true, manageGroups: true },
      });
      const user = await w.addMember(org.id, OPERATOR, { email: 'u@contoso.example' });
      const asCustom = await w.engine.organization(org.id, custom.person!.principal);

      await w.expectRefusedUnchanged(
        () => asCustom.inviteMembers({ emails: ['n@contoso.example'], role: 'custom', permissions: { managePolicies: true } }),
        'auth.permission_denied',
      );
      await w.expectRefusedUnchanged(
        () => asCustom.updateMember(user.member.id, { role: 'custom', permissions: { manageGroups: true, accessEventLogs: true } }),
        'auth.permission_denied',
      );
      const updated = await asCustom.updateMember(user.member.id, { role: 'custom', permissions: { manageGroups: true } });
      expect(updated).toMatchObject({ role: 'custom', permissions: { manageGroups: true } });
    });

    it('custom roles need the Enterprise plan', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ plan: 'teams' });
      const user = await w.addMember(org.id, admin.principal, { email: 'u@contoso.example' });
      const handle = await w.engine.organization(org.id, admin.principal);
      await w.expectRefusedUnchanged(
        () => handle.inviteMembers({ emails: ['c@contoso.example'], role: 'custom', permissions: { manageGroups: true } }),
        'organization.plan_feature',
      );
      await w.expectRefusedUnchanged(
        () => handle.updateMember(user.member.id, { role: 'custom', permissions: { manageGroups: true } }),
        'organization.plan_feature',
      );
    });

    it('nobody revokes, restores, removes, updates or confirms themselves', async () => {
      const w = world();
      const { org, owner, ownerPrincipal } = await clientWithStaff(w);
      await w.addMember(org.id, ownerPrincipal, { email: 'o2@contoso.example', role: 'owner' });
      const asOwner = await w.engine.organization(org.id, ownerPrincipal);
      for (const change of [
        () => asOwner.revokeMember(owner.id),
        () => asOwner.restoreMember(owner.id),
        () => asOwner.removeMember(owner.id),
        () => asOwner.updateMember(owner.id, { name: 'Me' }),
        () => asOwner.updateMember(owner.id, { role: 'admin' }),
        () => asOwner.confirmMember(owner.id),
      ]) {
        await w.expectRefusedUnchanged(change, 'member.self_action');
      }
    });

    it('a provider user who is also a member of the client still cannot revoke, restore, remove or change themselves', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const operator = await w.engine.organization(org.id, OPERATOR);
      const { invited } = await operator.inviteMembers({ emails: ['alice@msp.example'], role: 'user' });
      await w.engine.acceptInvitation({ token: await w.mailedToken('alice@msp.example') }, admin.principal);
      await operator.confirmMember(invited[0]!.id);

      const asAlice = await w.engine.organization(org.id, admin.principal);
      expect(asAlice.caller.role).toBe('owner');
      for (const change of [
        () => asAlice.revokeMember(invited[0]!.id),
        () => asAlice.removeMember(invited[0]!.id),
        () => asAlice.updateMember(invited[0]!.id, { role: 'owner' }),
      ]) {
        await w.expectRefusedUnchanged(change, 'member.self_action');
      }
      await operator.revokeMember(invited[0]!.id);
      await w.expectRefusedUnchanged(() => asAlice.restoreMember(invited[0]!.id), 'member.self_action');
    });

    it('a member with the user role administers nothing', async () => {
      const w = world();
      const { org, owner } = await clientWithStaff(w);
      const user = await w.addMember(org.id, OPERATOR, { email: 'u@contoso.example', role: 'user' });
      const asUser = await w.engine.organization(org.id, user.person!.principal);
      for (const read of [
        () => asUser.listMembers({}),
        () => asUser.getMember(owner.id),
        () => asUser.listGroups(),
        () => asUser.listCollections(),
        () => asUser.events({}),
      ]) {
        await expectCode(read, 'auth.permission_denied');
      }
      for (const change of [
        () => asUser.inviteMembers({ emails: ['x@contoso.example'], role: 'user' }),
        () => asUser.revokeMember(owner.id),
        () => asUser.createGroup({ name: 'G' }),
        () => asUser.createCollection({ name: 'C' }),
      ]) {
        await w.expectRefusedUnchanged(change, 'auth.permission_denied');
      }
    });

    it('a custom member without any flag administers nothing', async () => {
      const w = world();
      const { org } = await clientWithStaff(w);
      const custom = await w.addMember(org.id, OPERATOR, { email: 'cu@contoso.example', role: 'custom', permissions: {} });
      const asCustom = await w.engine.organization(org.id, custom.person!.principal);
      await expectCode(() => asCustom.listMembers({}), 'auth.permission_denied');
    });

    it('a member of one organization gets "not found" on another; unconfirmed members get it on their own', async () => {
      const w = world();
      const { provider, admin, org, ownerPrincipal } = await clientWithStaff(w);
      const other = await w.createClient(provider.id, admin.principal, { name: 'Fabrikam' });
      await expectCode(w.engine.organization(other.id, ownerPrincipal), 'organization.not_found');
      const accepted = await w.addMember(org.id, admin.principal, { email: 'acc@contoso.example', status: 'accepted' });
      await expectCode(w.engine.organization(org.id, accepted.person!.principal), 'organization.not_found');
      // Ids of another organization's rows are "not found" inside this one.
      const foreign = await w.addMember(other.id, admin.principal, { email: 'f@fabrikam.example', status: 'invited' });
      const asOwner = await w.engine.organization(org.id, ownerPrincipal);
      await expectCode(() => asOwner.getMember(foreign.member.id), 'member.not_found');
      await w.expectRefusedUnchanged(() => asOwner.revokeMember(foreign.member.id), 'member.not_found');
      await w.expectRefusedUnchanged(() => asOwner.removeMember(foreign.member.id), 'member.not_found');
    });

    it('removal deletes the membership but the account survives, with its other memberships', async () => {
      const w = world();
      const { provider, admin, org } = await w.managedClient();
      const other = await w.createClient(provider.id, admin.principal, { name: 'Fabrikam' });
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example' });
      w.clock.advance(MINUTE);
      await w.addMember(other.id, admin.principal, { email: 'dave@contoso.example' });
      const handle = await w.engine.organization(org.id, admin.principal);

      await handle.removeMember(dave.member.id);
      await expectCode(() => handle.getMember(dave.member.id), 'member.not_found');
      await expect(w.engine.authenticate(dave.person!.apiToken)).resolves.toEqual(dave.person!.principal);
      const me = await w.engine.me(dave.person!.principal);
      expect(me.user.email).toBe('dave@contoso.example');
      expect(me.organizations.map((o) => o.organizationId)).toEqual([other.id]);
      // The person can be invited again and accepts with the same account.
      await handle.inviteMembers({ emails: ['dave@contoso.example'], role: 'user' });
      const again = await w.engine.acceptInvitation({ token: await w.mailedToken('dave@contoso.example') }, dave.person!.principal);
      expect(again.user.id).toBe(dave.person!.userId);
    });
  });

  describe('the last confirmed owner', () => {
    it('revoking, removing or demoting the last confirmed owner of a self-managed organization is refused and changes nothing', async () => {
      const w = world();
      const { org, owner } = await w.selfManagedOrg();
      await w.addMember(org.id, owner.person.principal, { email: 'inv@contoso.example', role: 'owner', status: 'invited' });
      await w.addMember(org.id, owner.person.principal, { email: 'acc@contoso.example', role: 'owner', status: 'accepted' });
      await w.addMember(org.id, owner.person.principal, { email: 'adm@contoso.example', role: 'admin' });
      const operator = await w.engine.organization(org.id, OPERATOR);
      await w.expectRefusedUnchanged(() => operator.revokeMember(owner.member.id), 'organization.last_owner');
      await w.expectRefusedUnchanged(() => operator.removeMember(owner.member.id), 'organization.last_owner');
      await w.expectRefusedUnchanged(() => operator.updateMember(owner.member.id, { role: 'admin' }), 'organization.last_owner');
    });

    it('with a second confirmed owner, either one may go', async () => {
      const w = world();
      const { org, owner } = await w.selfManagedOrg();
      const second = await w.addMember(org.id, owner.person.principal, { email: 'o2@contoso.example', role: 'owner' });
      const asSecond = await w.engine.organization(org.id, second.person!.principal);
      await expect(asSecond.revokeMember(owner.member.id)).resolves.toMatchObject({ status: 'revoked' });
      // Now the second is the last one.
      const operator = await w.engine.organization(org.id, OPERATOR);
      await w.expectRefusedUnchanged(() => operator.revokeMember(second.member.id), 'organization.last_owner');
    });

    it('in a managed client, confirmed provider users count as owners', async () => {
      const w = world();
      const { org, admin } = await w.managedClient();
      const owner = await w.addMember(org.id, admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
      const handle = await w.engine.organization(org.id, admin.principal);
      await expect(handle.revokeMember(owner.member.id)).resolves.toMatchObject({ status: 'revoked' });
      await handle.restoreMember(owner.member.id);
      await expect(handle.updateMember(owner.member.id, { role: 'admin' })).resolves.toMatchObject({ role: 'admin' });
    });
  });

  describe('the singleOrg policy', () => {
    /** Two enterprise clients of one provider, and Dave confirmed in the first. */
    async function twoOrganizations(w: World) {
      const client = await w.managedClient({ plan: 'enterprise' });
      const second = await w.createClient(client.provider.id, client.admin.principal, { name: 'Fabrikam', plan: 'enterprise' });
      const dave = await w.addMember(client.org.id, client.admin.principal, { email: 'dave@contoso.example' });
      w.clock.advance(MINUTE);
      const first = await w.engine.organization(client.org.id, client.admin.principal);
      const other = await w.engine.organization(second.id, client.admin.principal);
      return { ...client, first, other, dave: { member: dave.member, person: dave.person! } };
    }

    for (const where of ['the organization joined', 'the organization already joined'] as const) {
      it(`accepting is refused when ${where} has singleOrg`, async () => {
        const w = world();
        const { first, other, dave } = await twoOrganizations(w);
        const policyHolder = where === 'the organization joined' ? other : first;
        await policyHolder.putPolicy({ type: 'singleOrg', enabled: true });
        await other.inviteMembers({ emails: ['dave@contoso.example'], role: 'user' });
        const token = await w.mailedToken('dave@contoso.example');
        await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token }, dave.person.principal), 'policy.violation');
        // Once the policy is off, the same token works.
        await policyHolder.putPolicy({ type: 'singleOrg', enabled: false });
        await expect(w.engine.acceptInvitation({ token }, dave.person.principal)).resolves.toMatchObject({ member: { status: 'accepted' } });
      });

      it(`confirming is refused when ${where} has singleOrg`, async () => {
        const w = world();
        const { first, other, dave } = await twoOrganizations(w);
        await other.inviteMembers({ emails: ['dave@contoso.example'], role: 'user' });
        const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('dave@contoso.example') });
        const policyHolder = where === 'the organization joined' ? other : first;
        await policyHolder.putPolicy({ type: 'singleOrg', enabled: true });
        await w.expectRefusedUnchanged(() => other.confirmMember(accepted.member!.id), 'policy.violation');
        expect(accepted.user.id).toBe(dave.person.userId);
      });

      it(`restoring is refused when ${where} has singleOrg`, async () => {
        const w = world();
        const { first, other } = await twoOrganizations(w);
        await other.inviteMembers({ emails: ['dave@contoso.example'], role: 'user' });
        const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('dave@contoso.example') });
        await other.confirmMember(accepted.member!.id);
        await other.revokeMember(accepted.member!.id);
        const policyHolder = where === 'the organization joined' ? other : first;
        await policyHolder.putPolicy({ type: 'singleOrg', enabled: true });
        await w.expectRefusedUnchanged(() => other.restoreMember(accepted.member!.id), 'policy.violation');
      });
    }

    it('singleOrg does not stop a person whose other memberships are only invited or revoked', async () => {
      const w = world();
      const { first, other, dave } = await twoOrganizations(w);
      await first.revokeMember(dave.member.id);
      await other.putPolicy({ type: 'singleOrg', enabled: true });
      await other.inviteMembers({ emails: ['dave@contoso.example'], role: 'user' });
      const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('dave@contoso.example') });
      await expect(other.confirmMember(accepted.member!.id)).resolves.toMatchObject({ status: 'confirmed' });
      // Restoring Dave in the first organization would now break the policy of the other.
      await w.expectRefusedUnchanged(() => first.restoreMember(dave.member.id), 'policy.violation');
    });

    it('restoring a member revoked while invited is not a membership and is allowed', async () => {
      const w = world();
      const { first, other } = await twoOrganizations(w);
      await first.putPolicy({ type: 'singleOrg', enabled: true });
      const { invited } = await other.inviteMembers({ emails: ['dave@contoso.example'], role: 'user' });
      await other.revokeMember(invited[0]!.id);
      await expect(other.restoreMember(invited[0]!.id)).resolves.toMatchObject({ status: 'invited' });
    });
  });
});
