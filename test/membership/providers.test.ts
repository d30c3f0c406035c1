/**
 * Providers (domain.md "Provider"): created by the operator, pending until its admin completes the
 * mailed setup, then active; disabling a provider disables its clients, enabling restores them.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { expectCode, HOUR, MINUTE, OPERATOR, useWorld } from '../support/world.js';

describeEachDriver('providers', (driver) => {
  const world = useWorld(driver);

  it('only the operator creates providers; a personal token is refused and nothing is written', async () => {
    const w = world();
    const { admin } = await w.setUpProvider();
    await w.expectRefusedUnchanged(
      () => w.engine.createProvider(admin.principal, { name: 'Rogue', adminEmail: 'rogue@example.com' }),
      'auth.permission_denied',
    );
    expect(await w.engine.listProviders(OPERATOR)).toHaveLength(1);
  });

  it('a new provider is pending [0] and mails its admin a setup link', async () => {
    const w = world();
    const { provider, setupToken } = await w.createProvider({ name: 'Acme MSP', adminEmail: 'Alice@MSP.example' });
    expect(provider).toMatchObject({ name: 'Acme MSP', status: 'pending', statusCode: 0, enabled: true });
    expect(setupToken).toMatch(/^inv_/);
    const outbox = await w.engine.listOutbox(OPERATOR, { recipient: 'alice@msp.example' });
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.text).toContain('http://portico.test/providers/setup?token=');
  });

  it('completing setup activates the provider [2] and makes the invited person its first confirmed admin', async () => {
    const w = world();
    const { provider, setupToken } = await w.createProvider({ adminEmail: 'alice@msp.example' });
    const done = await w.engine.completeProviderSetup({ token: setupToken, name: 'Acme Managed', billingEmail: 'Billing@MSP.example' });
    expect(done.provider).toMatchObject({ id: provider.id, status: 'active', statusCode: 2, name: 'Acme Managed', billingEmail: 'billing@msp.example' });
    expect(done.user.email).toBe('alice@msp.example');

    const alice = await w.personOf('alice@msp.example', done.apiToken);
    const handle = await w.engine.provider(provider.id, alice.principal);
    expect(handle.caller.type).toBe('admin');
    expect(await handle.listUsers()).toEqual([
      expect.objectContaining({ userId: alice.userId, email: 'alice@msp.example', type: 'admin', typeCode: 0, status: 'confirmed', statusCode: 2 }),
    ]);
  });

  it('the setup token is single-use: a second completion is refused and changes nothing', async () => {
    const w = world();
    const { setupToken } = await w.createProvider();
    await w.engine.completeProviderSetup({ token: setupToken });
    await w.expectRefusedUnchanged(() => w.engine.completeProviderSetup({ token: setupToken, name: 'Again' }), 'invitation.invalid');
  });

  it('the setup token is valid for 120 hours and no longer: an expired one leaves the provider pending', async () => {
    const w = world();
    const early = await w.createProvider({ adminEmail: 'early@msp.example' });
    const late = await w.createProvider({ adminEmail: 'late@msp.example' });

    w.clock.advance(120 * HOUR - MINUTE);
    await expect(w.engine.completeProviderSetup({ token: early.setupToken })).resolves.toMatchObject({
      provider: { status: 'active' },
    });

    w.clock.advance(2 * MINUTE);
    await w.expectRefusedUnchanged(() => w.engine.completeProviderSetup({ token: late.setupToken }), 'invitation.invalid');
    const providers = await w.engine.listProviders(OPERATOR);
    expect(providers.find((p) => p.id === late.provider.id)).toMatchObject({ status: 'pending', statusCode: 0 });
  });

  it('a setup token is not an invitation and an invitation is not a setup token', async () => {
    const w = world();
    const { setupToken } = await w.createProvider({ adminEmail: 'zed@other.example' });
    const { provider, admin } = await w.setUpProvider();
    await w.addProviderUser(provider.id, admin.principal, { email: 'bob@msp.example', status: 'invited' });
    const invitation = await w.mailedToken('bob@msp.example');

    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token: setupToken }), 'invitation.invalid');
    await w.expectRefusedUnchanged(() => w.engine.completeProviderSetup({ token: invitation }), 'invitation.invalid');
  });

  it('a provider still pending cannot have clients', async () => {
    const w = world();
    const { provider } = await w.createProvider();
    const handle = await w.engine.provider(provider.id, OPERATOR);
    await w.expectRefusedUnchanged(() => handle.createClient({ name: 'Early', plan: 'teams', seats: 5 }), 'status.invalid');
  });

  it('disabling a provider disables all its clients; enabling brings them back', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const first = await w.createClient(provider.id, admin.principal, { name: 'First' });
    const second = await w.createClient(provider.id, admin.principal, { name: 'Second' });
    const owner = await w.addMember(first.id, admin.principal, { email: 'olivia@first.example', role: 'admin' });
    const other = await w.setUpProvider({ adminEmail: 'zed@other.example' });
    const foreign = await w.createClient(other.provider.id, other.admin.principal, { name: 'Foreign' });
    const group = await (await w.engine.organization(first.id, admin.principal)).createGroup({ name: 'Team' });
    // A request that resolved its caller just before the provider was disabled.
    const asMember = await w.engine.organization(first.id, owner.person!.principal);

    const disabled = await w.engine.setProviderEnabled(OPERATOR, provider.id, false);
    expect(disabled.enabled).toBe(false);
    const clients = await (await w.engine.provider(provider.id, OPERATOR)).listClients();
    expect(clients.map((c) => [c.id, c.enabled])).toEqual(
      expect.arrayContaining([
        [first.id, false],
        [second.id, false],
      ]),
    );
    expect(clients).toHaveLength(2);
    expect((await w.engine.organization(foreign.id, OPERATOR).then((o) => o.get())).enabled).toBe(true);

    // Its staff are shut out, and the clients' own administrators can change nothing.
    await expectCode(w.engine.provider(provider.id, admin.principal), 'provider.disabled');
    await expectCode(w.engine.organization(first.id, admin.principal), 'provider.disabled');
    await expectCode(w.engine.organization(first.id, owner.person!.principal), 'organization.disabled');
    await w.expectRefusedUnchanged(() => asMember.inviteMembers({ emails: ['new@first.example'], role: 'user' }), 'organization.disabled');
    await w.expectRefusedUnchanged(() => asMember.createCollection({ name: 'Blocked' }), 'organization.disabled');
    await w.expectRefusedUnchanged(() => asMember.updateGroup(group.id, { name: 'Blocked' }), 'organization.disabled');
    await w.expectRefusedUnchanged(
      () => asMember.changeGroupMembers(group.id, { add: [owner.member.id] }),
      'organization.disabled',
    );

    const enabled = await w.engine.setProviderEnabled(OPERATOR, provider.id, true);
    expect(enabled.enabled).toBe(true);
    expect((await (await w.engine.provider(provider.id, OPERATOR)).listClients()).every((c) => c.enabled)).toBe(true);
    const again = await w.engine.organization(first.id, admin.principal);
    await expect(again.inviteMembers({ emails: ['new@first.example'], role: 'user' })).resolves.toMatchObject({
      invited: [{ email: 'new@first.example' }],
    });
  });

  it('a client created while its provider is disabled is disabled too', async () => {
    const w = world();
    const { provider } = await w.setUpProvider();
    await w.engine.setProviderEnabled(OPERATOR, provider.id, false);
    const org = await w.createClient(provider.id, OPERATOR, { name: 'Late' });
    expect(org.enabled).toBe(false);
  });

  it('a client unlinked earlier no longer follows its former provider being disabled', async () => {
    const w = world();
    const { provider, org, owner } = await w.selfManagedOrg();
    await w.engine.setProviderEnabled(OPERATOR, provider.id, false);
    const asOwner = await w.engine.organization(org.id, owner.person.principal);
    expect((await asOwner.get()).enabled).toBe(true);
    await expect(asOwner.createCollection({ name: 'Still mine' })).resolves.toMatchObject({ name: 'Still mine' });
  });

  it('only the operator disables or enables a provider', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    await w.expectRefusedUnchanged(() => w.engine.setProviderEnabled(admin.principal, provider.id, false), 'auth.permission_denied');
  });

  it('a provider admin edits the provider; the edit is recorded', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    const updated = await handle.update({ name: 'Renamed', businessName: 'Renamed Ltd', billingEmail: 'Pay@MSP.example' });
    expect(updated).toMatchObject({ name: 'Renamed', businessName: 'Renamed Ltd', billingEmail: 'pay@msp.example' });
    expect(await handle.get()).toEqual(updated);
  });
});
