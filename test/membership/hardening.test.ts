/**
 * Hardening findings of issue 6, each pinned by a test that failed before its fix: rights are read
 * again inside the transaction that uses them, a disabled organization is closed for reads too,
 * and an invitation belongs to the address it was mailed to.
 */
import { eq } from 'drizzle-orm';
import { expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { describeEachDriver } from '../support/db.js';
import { expectCode, OPERATOR, useWorld } from '../support/world.js';

describeEachDriver('hardening', (driver) => {
  const world = useWorld(driver);

  // ---- rights are checked inside the transaction that uses them ----------------------------

  it('an organization admin revoked after the request resolved its rights can no longer invite', async () => {
    const w = world();
    const { org, admin } = await w.managedClient({ seats: 10 });
    const ada = await w.addMember(org.id, admin.principal, { email: 'ada@contoso.example', role: 'admin' });
    // Ada's request resolved her as an admin, then waited; meanwhile she was revoked.
    const stale = await w.engine.organization(org.id, ada.person!.principal);
    await (await w.engine.organization(org.id, admin.principal)).revokeMember(ada.member.id);
    await w.expectRefusedUnchanged(
      () => stale.inviteMembers({ emails: ['eve@contoso.example'], role: 'user' }),
      'organization.not_found',
    );
  });

  it('an organization admin demoted to user after resolving cannot revoke anyone, nor atomically', async () => {
    const w = world();
    const { org, admin } = await w.managedClient({ seats: 10 });
    const ada = await w.addMember(org.id, admin.principal, { email: 'ada@contoso.example', role: 'admin' });
    const bob = await w.addMember(org.id, admin.principal, { email: 'bob@contoso.example' });
    const stale = await w.engine.organization(org.id, ada.person!.principal);
    await (await w.engine.organization(org.id, admin.principal)).updateMember(ada.member.id, { role: 'user' });
    await w.expectRefusedUnchanged(() => stale.revokeMember(bob.member.id), 'auth.permission_denied');
    await w.expectRefusedUnchanged(
      () => w.engine.atomically(stale, (org) => org.revokeMember(bob.member.id)),
      'auth.permission_denied',
    );
  });

  it('a Provider Admin demoted to service user after resolving cannot create a client', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const second = await w.addProviderUser(provider.id, admin.principal, { email: 'bea@msp.example', type: 'admin' });
    const stale = await w.engine.provider(provider.id, second.person!.principal);
    await (await w.engine.provider(provider.id, admin.principal)).updateUser(second.providerUser.id, { type: 'serviceUser' });
    await w.expectRefusedUnchanged(
      () => stale.createClient({ name: 'Late', plan: 'teams', seats: 1 }),
      'auth.permission_denied',
    );
  });

  it('a provider user removed after resolving can no longer change a client organization', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient();
    const staff = await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });
    const stale = await w.engine.organization(org.id, staff.person!.principal);
    await (await w.engine.provider(provider.id, admin.principal)).removeUser(staff.providerUser.id);
    await w.expectRefusedUnchanged(() => stale.createGroup({ name: 'Late' }), 'organization.not_found');
  });

  // ---- a disabled provider's organizations are closed -------------------------------------

  it("a disabled provider's client organization is closed to its own members, for reads too", async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient();
    const owner = await w.addMember(org.id, admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
    const member = await w.addMember(org.id, admin.principal, { email: 'max@contoso.example', role: 'admin' });
    const elsewhere = await w.createClient(provider.id, admin.principal, { name: 'Fabrikam' });
    const stranger = await w.addMember(elsewhere.id, admin.principal, { email: 'x@fabrikam.example' });
    expect((await (await w.engine.organization(org.id, member.person!.principal)).listMembers({})).data).toHaveLength(2);
    await w.engine.setProviderEnabled(OPERATOR, provider.id, false);
    for (const person of [owner.person!, member.person!]) {
      await expectCode(w.engine.organization(org.id, person.principal), 'organization.disabled');
    }
    await expectCode(w.engine.organization(org.id, admin.principal), 'provider.disabled');
    // Strangers still learn nothing; the operator still sees it.
    await expectCode(w.engine.organization(org.id, stranger.person!.principal), 'organization.not_found');
    await expect((await w.engine.organization(org.id, OPERATOR)).get()).resolves.toMatchObject({ enabled: false });
    await w.engine.setProviderEnabled(OPERATOR, provider.id, true);
    expect((await (await w.engine.organization(org.id, member.person!.principal)).listMembers({})).data).toHaveLength(2);
  });

  // ---- an invitation belongs to its address ------------------------------------------------

  it("a change of a pending member's address voids the old token and mails one to the new address", async () => {
    const w = world();
    const { org, admin } = await w.managedClient();
    const handle = await w.engine.organization(org.id, admin.principal);
    const { member } = await w.addMember(org.id, admin.principal, { email: 'old@contoso.example', status: 'invited' });
    const oldToken = await w.mailedToken('old@contoso.example');
    await handle.updateMember(member.id, { email: 'new@contoso.example' });
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: oldToken }), 'invitation.invalid');
    const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('new@contoso.example') });
    expect(accepted.user.email).toBe('new@contoso.example');
    expect(accepted.member).toMatchObject({ id: member.id, email: 'new@contoso.example', status: 'accepted' });
  });

  it('an invitation whose address no longer is the member’s cannot be accepted, even if it was left open', async () => {
    const w = world();
    const { org, admin } = await w.managedClient();
    const { member } = await w.addMember(org.id, admin.principal, { email: 'old@contoso.example', status: 'invited' });
    const token = await w.mailedToken('old@contoso.example');
    // The address changes behind the engine's invitation bookkeeping (as a restored backup or an
    // older version could leave it): acceptance still checks the member's current address.
    await w.db.update(schema.members).set({ email: 'moved@contoso.example' }).where(eq(schema.members.id, member.id));
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token }), 'invitation.invalid');
  });

  it('a change of a revoked member’s address voids its open invitation and mails nothing', async () => {
    const w = world();
    const { org, admin } = await w.managedClient();
    const handle = await w.engine.organization(org.id, admin.principal);
    const { member } = await w.addMember(org.id, admin.principal, { email: 'old@contoso.example', status: 'invited' });
    const token = await w.mailedToken('old@contoso.example');
    await handle.revokeMember(member.id);
    await handle.updateMember(member.id, { email: 'new@contoso.example' });
    expect(await w.engine.listOutbox(OPERATOR, { recipient: 'new@contoso.example' })).toHaveLength(0);
    await handle.restoreMember(member.id);
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token }), 'invitation.invalid');
  });
});
