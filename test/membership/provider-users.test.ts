/**
 * Provider users (domain.md "Provider users"): admins invite, invitees accept with their mailed
 * token, admins confirm; a confirmed admin always remains; only confirmed provider users act, as
 * Owner of every client, and service users only do what the table in domain.md allows.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { expectCode, HOUR, MINUTE, OPERATOR, useWorld } from '../support/world.js';

describeEachDriver('provider users', (driver) => {
  const world = useWorld(driver);

  it('only Provider Admins invite: a service user is refused and nothing is written', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const { person: sam } = await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });
    const asSam = await w.engine.provider(provider.id, sam!.principal);
    await w.expectRefusedUnchanged(() => asSam.inviteUsers({ emails: ['x@msp.example'], type: 'admin' }), 'auth.permission_denied');
  });

  it('an invitation batch takes up to 20 emails, lower-cased and deduplicated, each with its own mailed token', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    const emails = Array.from({ length: 20 }, (_, i) => `Staff${i}@MSP.example`);
    const { invited, skipped } = await handle.inviteUsers({ emails: [...emails, 'STAFF0@msp.example'], type: 'serviceUser' });
    expect(skipped).toEqual([]);
    expect(invited.map((u) => u.email).sort()).toEqual(emails.map((e) => e.toLowerCase()).sort());
    expect(invited.every((u) => u.status === 'invited' && u.statusCode === 0 && u.type === 'serviceUser' && u.typeCode === 1)).toBe(true);
    const tokens = await Promise.all(invited.map((u) => w.mailedToken(u.email)));
    expect(new Set(tokens).size).toBe(20);
  });

  it('a batch of 21 emails, or of none, is refused whole', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    const emails = Array.from({ length: 21 }, (_, i) => `staff${i}@msp.example`);
    await w.expectRefusedUnchanged(() => handle.inviteUsers({ emails, type: 'admin' }), 'input.invalid');
    await w.expectRefusedUnchanged(() => handle.inviteUsers({ emails: [], type: 'admin' }), 'input.invalid');
  });

  it('emails already present are skipped, whatever their case, and get no new mail', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    await handle.inviteUsers({ emails: ['bob@msp.example'], type: 'admin' });
    const before = await w.engine.listOutbox(OPERATOR, { recipient: 'bob@msp.example' });
    const { invited, skipped } = await handle.inviteUsers({
      emails: ['BOB@msp.example', 'Alice@MSP.example', 'carol@msp.example'],
      type: 'serviceUser',
    });
    expect(invited.map((u) => u.email)).toEqual(['carol@msp.example']);
    expect(skipped.sort()).toEqual(['alice@msp.example', 'bob@msp.example']);
    expect(await w.engine.listOutbox(OPERATOR, { recipient: 'bob@msp.example' })).toEqual(before);
    const users = await handle.listUsers();
    expect(users.find((u) => u.email === 'bob@msp.example')!.type).toBe('admin');
    expect(users).toHaveLength(3);
  });

  it('accepting with the mailed token links the account and makes the provider user accepted [1]', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const { providerUser } = await w.addProviderUser(provider.id, admin.principal, { email: 'Bob@MSP.example', status: 'invited' });
    const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('bob@msp.example'), name: 'Bob' });
    expect(accepted.providerUserId).toBe(providerUser.id);
    expect(accepted.user).toMatchObject({ email: 'bob@msp.example', name: 'Bob' });
    const row = (await (await w.engine.provider(provider.id, admin.principal)).listUsers()).find((u) => u.id === providerUser.id);
    expect(row).toMatchObject({ status: 'accepted', statusCode: 1, userId: accepted.user.id });
  });

  it('a signed-in person accepts only an invitation sent to its own email (case-insensitively)', async () => {
    const w = world();
    const a = await w.setUpProvider({ adminEmail: 'alice@msp.example' });
    const b = await w.setUpProvider({ adminEmail: 'zed@other.example' });
    const handleB = await w.engine.provider(b.provider.id, b.admin.principal);
    await handleB.inviteUsers({ emails: ['ALICE@msp.example', 'bob@msp.example'], type: 'admin' });
    const bobToken = await w.mailedToken('bob@msp.example');

    // Alice, signed in, cannot take Bob's invitation; Bob's token stays usable.
    await w.expectRefusedUnchanged(
      () => w.engine.acceptInvitation({ token: bobToken }, a.admin.principal),
      'invitation.email_mismatch',
    );
    await expect(w.engine.acceptInvitation({ token: bobToken })).resolves.toMatchObject({ user: { email: 'bob@msp.example' } });

    // Her own invitation, sent to her email in another case, joins her existing account.
    const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('alice@msp.example') }, a.admin.principal);
    expect(accepted.user.id).toBe(a.admin.userId);
  });

  it('an invitation token is used once and expires after 120 hours', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    await handle.inviteUsers({ emails: ['bob@msp.example', 'carol@msp.example'], type: 'admin' });
    const bobToken = await w.mailedToken('bob@msp.example');
    const carolToken = await w.mailedToken('carol@msp.example');

    w.clock.advance(120 * HOUR - MINUTE);
    await w.engine.acceptInvitation({ token: bobToken });
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: bobToken }), 'invitation.invalid');

    w.clock.advance(2 * MINUTE);
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: carolToken }), 'invitation.invalid');
    expect((await handle.listUsers()).find((u) => u.email === 'carol@msp.example')!.status).toBe('invited');
  });

  it('only accepted provider users can be confirmed, and only by an admin', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    const invited = await w.addProviderUser(provider.id, admin.principal, { email: 'ivy@msp.example', status: 'invited' });
    const accepted = await w.addProviderUser(provider.id, admin.principal, { email: 'ann@msp.example', status: 'accepted' });
    const { person: sam } = await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });

    await w.expectRefusedUnchanged(() => handle.confirmUser(invited.providerUser.id), 'status.invalid');
    await w.expectRefusedUnchanged(() => handle.confirmUser(admin.providerUserId), 'status.invalid');
    const asSam = await w.engine.provider(provider.id, sam!.principal);
    await w.expectRefusedUnchanged(() => asSam.confirmUser(accepted.providerUser.id), 'auth.permission_denied');

    const confirmed = await handle.confirmUser(accepted.providerUser.id);
    expect(confirmed).toMatchObject({ status: 'confirmed', statusCode: 2 });
    await expect(w.engine.provider(provider.id, accepted.person!.principal)).resolves.toMatchObject({ id: provider.id });
  });

  it('reinviting works only for rows still invited, and the earlier token stops working', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    const { providerUser } = await w.addProviderUser(provider.id, admin.principal, { email: 'bob@msp.example', status: 'invited' });
    const first = await w.mailedToken('bob@msp.example');

    w.clock.advance(MINUTE);
    await handle.reinviteUser(providerUser.id);
    const second = await w.mailedToken('bob@msp.example');
    expect(second).not.toBe(first);
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: first }), 'invitation.invalid');
    await w.engine.acceptInvitation({ token: second });

    await w.expectRefusedUnchanged(() => handle.reinviteUser(providerUser.id), 'status.invalid');
    await w.expectRefusedUnchanged(() => handle.reinviteUser(admin.providerUserId), 'status.invalid');
  });

  it('the last confirmed admin can be neither removed nor demoted; invited and accepted admins do not count', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    await w.addProviderUser(provider.id, admin.principal, { email: 'ivy@msp.example', status: 'invited' });
    await w.addProviderUser(provider.id, admin.principal, { email: 'ann@msp.example', status: 'accepted' });
    await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });
    const operator = await w.engine.provider(provider.id, OPERATOR);

    await w.expectRefusedUnchanged(() => operator.removeUser(admin.providerUserId), 'provider.last_admin');
    await w.expectRefusedUnchanged(() => operator.updateUser(admin.providerUserId, { type: 'serviceUser' }), 'provider.last_admin');

    // With a second confirmed admin, the first may go.
    await w.addProviderUser(provider.id, admin.principal, { email: 'bob@msp.example', type: 'admin' });
    await operator.updateUser(admin.providerUserId, { type: 'serviceUser' });
    const users = await operator.listUsers();
    expect(users.find((u) => u.id === admin.providerUserId)!.type).toBe('serviceUser');
  });

  it('demoting or removing an admin who is not confirmed needs no other admin', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const ivy = await w.addProviderUser(provider.id, admin.principal, { email: 'ivy@msp.example', status: 'invited' });
    const ann = await w.addProviderUser(provider.id, admin.principal, { email: 'ann@msp.example', status: 'accepted' });
    const handle = await w.engine.provider(provider.id, admin.principal);
    await handle.updateUser(ann.providerUser.id, { type: 'serviceUser' });
    await handle.removeUser(ivy.providerUser.id);
    expect((await handle.listUsers()).map((u) => u.email).sort()).toEqual(['alice@msp.example', 'ann@msp.example']);
  });

  it('nobody removes or demotes themselves, even with another admin left', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    await w.addProviderUser(provider.id, admin.principal, { email: 'bob@msp.example', type: 'admin' });
    const handle = await w.engine.provider(provider.id, admin.principal);
    await w.expectRefusedUnchanged(() => handle.removeUser(admin.providerUserId), 'member.self_action');
    await w.expectRefusedUnchanged(() => handle.updateUser(admin.providerUserId, { type: 'serviceUser' }), 'member.self_action');
  });

  it('removal deletes the row: the person no longer acts for the provider or its clients, but keeps the account', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient();
    const { providerUser, person: bob } = await w.addProviderUser(provider.id, admin.principal, { email: 'bob@msp.example' });
    await (await w.engine.organization(org.id, bob!.principal)).listMembers({});

    const handle = await w.engine.provider(provider.id, admin.principal);
    await handle.removeUser(providerUser.id);
    expect((await handle.listUsers()).map((u) => u.id)).not.toContain(providerUser.id);
    await expectCode(w.engine.provider(provider.id, bob!.principal), 'provider.not_found');
    await expectCode(w.engine.organization(org.id, bob!.principal), 'organization.not_found');
    await expect(w.engine.authenticate(bob!.apiToken)).resolves.toEqual(bob!.principal);
  });

  it('removing an invited provider user voids its invitation', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const { providerUser } = await w.addProviderUser(provider.id, admin.principal, { email: 'bob@msp.example', status: 'invited' });
    const token = await w.mailedToken('bob@msp.example');
    await (await w.engine.provider(provider.id, admin.principal)).removeUser(providerUser.id);
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token }), 'invitation.invalid');
  });

  it('only confirmed provider users act: invited and accepted ones get "not found" on the provider and its clients', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient();
    // Someone with an account elsewhere, invited but not yet accepted here.
    const other = await w.setUpProvider({ adminEmail: 'ivy@other.example' });
    await w.addProviderUser(provider.id, admin.principal, { email: 'ivy@other.example', status: 'invited' });
    const { person: ann } = await w.addProviderUser(provider.id, admin.principal, { email: 'ann@msp.example', status: 'accepted' });

    for (const principal of [other.admin.principal, ann!.principal]) {
      await expectCode(w.engine.provider(provider.id, principal), 'provider.not_found');
      await expectCode(w.engine.organization(org.id, principal), 'organization.not_found');
    }
  });

  it('provider users of one provider get "not found" on another provider and on its clients', async () => {
    const w = world();
    const a = await w.managedClient();
    const { person: samA } = await w.addProviderUser(a.provider.id, a.admin.principal, { email: 'sam@a.example', type: 'serviceUser' });
    const b = await w.setUpProvider({ adminEmail: 'zed@b.example' });
    const clientB = await w.createClient(b.provider.id, b.admin.principal, { name: 'Fabrikam' });

    for (const principal of [a.admin.principal, samA!.principal]) {
      await expectCode(w.engine.provider(b.provider.id, principal), 'provider.not_found');
      await expectCode(w.engine.organization(clientB.id, principal), 'organization.not_found');
    }
    for (const principal of [b.admin.principal]) {
      await expectCode(w.engine.organization(a.org.id, principal), 'organization.not_found');
    }
  });

  it('a service user views the provider, lists clients, renames a client and changes its seats', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient({ seats: 10 });
    const { person: sam } = await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });
    const asSam = await w.engine.provider(provider.id, sam!.principal);
    expect(asSam.caller.type).toBe('serviceUser');
    expect((await asSam.get()).id).toBe(provider.id);
    expect((await asSam.listClients()).map((c) => c.id)).toEqual([org.id]);
    const updated = await asSam.updateClient(org.id, { name: 'Contoso Renamed', seats: 25 });
    expect(updated).toMatchObject({ name: 'Contoso Renamed', seats: 25 });
  });

  it('a service user may not create or unlink clients, edit the provider, manage provider users or read provider events', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient();
    await w.addMember(org.id, admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
    const other = await w.addProviderUser(provider.id, admin.principal, { email: 'ann@msp.example', status: 'accepted' });
    const { providerUser: samRow, person: sam } = await w.addProviderUser(provider.id, admin.principal, {
      email: 'sam@msp.example',
      type: 'serviceUser',
    });
    const asSam = await w.engine.provider(provider.id, sam!.principal);
    const refusals: [string, () => Promise<unknown>][] = [
      ['create a client', () => asSam.createClient({ name: 'Nope', plan: 'teams', seats: 1 })],
      ['unlink a client', () => asSam.unlinkClient(org.id)],
      ['edit the provider', () => asSam.update({ name: 'Mine now' })],
      ['list provider users', async () => asSam.listUsers()],
      ['invite provider users', () => asSam.inviteUsers({ emails: ['x@msp.example'], type: 'serviceUser' })],
      ['confirm a provider user', () => asSam.confirmUser(other.providerUser.id)],
      ['reinvite a provider user', () => asSam.reinviteUser(other.providerUser.id)],
      ['promote itself', () => asSam.updateUser(samRow.id, { type: 'admin' })],
      ['remove a provider user', () => asSam.removeUser(admin.providerUserId)],
      ['read provider events', async () => asSam.events({})],
    ];
    for (const [what, change] of refusals) {
      await w.expectRefusedUnchanged(change, 'auth.permission_denied').catch((error: Error) => {
        throw new Error(`a service user could ${what}: ${error.message}`);
      });
    }
  });

  it('both admins and service users act as Owner in every client without a member row, owners included', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient({ seats: 10 });
    const { person: sam } = await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });
    const owner = await w.addMember(org.id, admin.principal, { email: 'olivia@contoso.example', role: 'owner' });

    for (const [who, principal] of [
      ['admin', admin.principal],
      ['service user', sam!.principal],
    ] as const) {
      const handle = await w.engine.organization(org.id, principal);
      expect(handle.caller.role, who).toBe('owner');
      const email = `owner-by-${who.replace(' ', '-')}@contoso.example`;
      const { invited } = await handle.inviteMembers({ emails: [email], role: 'owner' });
      await handle.updateMember(invited[0]!.id, { role: 'admin' });
      await handle.updateMember(invited[0]!.id, { role: 'owner' });
      const revoked = await handle.revokeMember(owner.member.id);
      expect(revoked.status).toBe('revoked');
      await handle.restoreMember(owner.member.id);
    }
    const members = await (await w.engine.organization(org.id, OPERATOR)).listMembers({});
    const emails = members.data.map((m) => m.email);
    expect(emails).not.toContain('alice@msp.example');
    expect(emails).not.toContain('sam@msp.example');
    expect(members.data.find((m) => m.id === owner.member.id)!.status).toBe('confirmed');
  });
});
