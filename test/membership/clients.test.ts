/**
 * Client organizations (domain.md "Client organizations"): created managed and billed to the
 * provider, owner invited, identifier unique and validated, seats never below use, and unlinking
 * only with a confirmed Owner of its own.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { expectCode, OPERATOR, useWorld } from '../support/world.js';

describeEachDriver('client organizations', (driver) => {
  const world = useWorld(driver);

  it('a new client is managed [0], billed to the provider, and its ownerEmail is invited as Owner', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider({ billingEmail: 'billing@msp.example' });
    const org = await w.createClient(provider.id, admin.principal, {
      name: 'Contoso',
      plan: 'teams',
      seats: 7,
      ownerEmail: 'Olivia@Contoso.example',
    });
    expect(org).toMatchObject({
      name: 'Contoso',
      plan: 'teams',
      seats: 7,
      status: 'managed',
      statusCode: 0,
      enabled: true,
      providerId: provider.id,
      billingEmail: 'billing@msp.example',
    });
    const handle = await w.engine.provider(provider.id, admin.principal);
    expect((await handle.listClients()).map((c) => c.id)).toEqual([org.id]);

    const members = await (await w.engine.organization(org.id, OPERATOR)).listMembers({});
    expect(members.data).toEqual([
      expect.objectContaining({ email: 'olivia@contoso.example', role: 'owner', roleCode: 0, status: 'invited', statusCode: 0 }),
    ]);
    // The owner can take the invitation up with the mailed token.
    const accepted = await w.engine.acceptInvitation({ token: await w.mailedToken('olivia@contoso.example') });
    expect(accepted.member).toMatchObject({ organizationId: org.id, role: 'owner', status: 'accepted' });
  });

  it('a client may start with a first collection, and has none otherwise', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const withOne = await w.createClient(provider.id, admin.principal, { name: 'With', collectionName: 'Shared' });
    const without = await w.createClient(provider.id, admin.principal, { name: 'Without' });
    const collections = await (await w.engine.organization(withOne.id, OPERATOR)).listCollections();
    expect(collections.map((c) => c.name)).toEqual(['Shared']);
    expect(await (await w.engine.organization(without.id, OPERATOR)).listCollections()).toEqual([]);
  });

  it('a client whose owner invitation does not fit its seats is not created at all', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    await w.expectRefusedUnchanged(
      () => handle.createClient({ name: 'Tiny', plan: 'teams', seats: 0, ownerEmail: 'o@tiny.example', collectionName: 'X' }),
      'organization.seat_limit',
    );
    expect(await handle.listClients()).toEqual([]);
  });

  it('the identifier is unique case-insensitively: a second client with it is refused and changes nothing', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const first = await w.createClient(provider.id, admin.principal, { name: 'Contoso', identifier: 'Contoso-SSO' });
    expect(first.identifier).toBe('contoso-sso');
    const handle = await w.engine.provider(provider.id, admin.principal);
    await w.expectRefusedUnchanged(
      () => handle.createClient({ name: 'Other', plan: 'teams', seats: 1, identifier: 'CONTOSO-sso' }),
      'conflict',
    );
    // Across providers too: the identifier is the SSO identifier of the whole installation.
    const other = await w.setUpProvider({ adminEmail: 'zed@other.example' });
    const otherHandle = await w.engine.provider(other.provider.id, other.admin.principal);
    await w.expectRefusedUnchanged(
      () => otherHandle.createClient({ name: 'Other', plan: 'teams', seats: 1, identifier: 'contoso-sso' }),
      'conflict',
    );
  });

  it('the identifier takes 1 to 50 letters, digits and inner hyphens; anything else is refused', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    const fifty = 'a'.repeat(50);
    await expect(handle.createClient({ name: 'Fifty', plan: 'teams', seats: 1, identifier: fifty })).resolves.toMatchObject({
      identifier: fifty,
    });
    await expect(handle.createClient({ name: 'One', plan: 'teams', seats: 1, identifier: 'x' })).resolves.toMatchObject({
      identifier: 'x',
    });
    for (const identifier of ['b'.repeat(51), '', '-lead', 'trail-', 'under_score', 'sp ace', 'dot.ted', 'ünï']) {
      await w.expectRefusedUnchanged(
        () => handle.createClient({ name: 'Bad', plan: 'teams', seats: 1, identifier }),
        'input.invalid',
      );
    }
  });

  it('without an identifier one is derived from the name, valid and unique', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const first = await w.createClient(provider.id, admin.principal, { name: 'Contoso & Co. — Zürich' });
    const second = await w.createClient(provider.id, admin.principal, { name: 'Contoso & Co. — Zürich' });
    for (const org of [first, second]) expect(org.identifier).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$/);
    expect(first.identifier).not.toBe(second.identifier);
  });

  it('an unknown plan is refused', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    await w.expectRefusedUnchanged(
      () => handle.createClient({ name: 'X', plan: 'family' as 'teams', seats: 1 }),
      'input.invalid',
    );
  });

  it('seats cannot go below the seats in use (invited, accepted and confirmed; revoked ones are free)', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient({ seats: 5 });
    await w.addMember(org.id, admin.principal, { email: 'i@contoso.example', status: 'invited' });
    await w.addMember(org.id, admin.principal, { email: 'a@contoso.example', status: 'accepted' });
    await w.addMember(org.id, admin.principal, { email: 'c@contoso.example', status: 'confirmed' });
    await w.addMember(org.id, admin.principal, { email: 'r@contoso.example', status: 'revoked' });
    const handle = await w.engine.provider(provider.id, admin.principal);

    await w.expectRefusedUnchanged(() => handle.updateClient(org.id, { seats: 2 }), 'input.invalid');
    await w.expectRefusedUnchanged(() => handle.updateClient(org.id, { seats: -1 }), 'input.invalid');
    await expect(handle.updateClient(org.id, { seats: 3 })).resolves.toMatchObject({ seats: 3 });
  });

  it('a provider changes only its own clients', async () => {
    const w = world();
    const a = await w.managedClient();
    const b = await w.setUpProvider({ adminEmail: 'zed@b.example' });
    const asB = await w.engine.provider(b.provider.id, b.admin.principal);
    await w.expectRefusedUnchanged(() => asB.updateClient(a.org.id, { name: 'Stolen' }), 'organization.not_found');
    await w.expectRefusedUnchanged(() => asB.unlinkClient(a.org.id), 'organization.not_found');
  });

  it('unlinking needs a confirmed Owner of the client itself; provider users, admins and unconfirmed owners do not count', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient();
    await w.addMember(org.id, admin.principal, { email: 'inv@contoso.example', role: 'owner', status: 'invited' });
    await w.addMember(org.id, admin.principal, { email: 'acc@contoso.example', role: 'owner', status: 'accepted' });
    await w.addMember(org.id, admin.principal, { email: 'rev@contoso.example', role: 'owner', status: 'revoked' });
    await w.addMember(org.id, admin.principal, { email: 'adm@contoso.example', role: 'admin' });
    const handle = await w.engine.provider(provider.id, admin.principal);
    await w.expectRefusedUnchanged(() => handle.unlinkClient(org.id), 'organization.last_owner');
  });

  it('an unlinked client becomes self-managed: created [1], no provider, out of the provider reach', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient();
    const { person: sam } = await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });
    const owner = await w.addMember(org.id, admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
    const handle = await w.engine.provider(provider.id, admin.principal);

    const unlinked = await handle.unlinkClient(org.id);
    expect(unlinked).toMatchObject({ id: org.id, status: 'created', statusCode: 1, providerId: null, enabled: true });
    expect(await handle.listClients()).toEqual([]);
    for (const principal of [admin.principal, sam!.principal]) {
      await expectCode(w.engine.organization(org.id, principal), 'organization.not_found');
    }
    await expectCode(handle.updateClient(org.id, { seats: 50 }), 'organization.not_found');
    // Its own owner still administers it.
    const asOwner = await w.engine.organization(org.id, owner.person!.principal);
    expect(asOwner.caller.role).toBe('owner');
    await expect(asOwner.listMembers({})).resolves.toMatchObject({ data: [expect.objectContaining({ email: 'olivia@contoso.example' })] });
  });

  it('seats must be a whole number of at least 0, at creation and on change', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    for (const seats of [-1, 2.5, Number.NaN]) {
      await w.expectRefusedUnchanged(() => handle.createClient({ name: 'Bad', plan: 'teams', seats }), 'input.invalid');
    }
    const org = await w.createClient(provider.id, admin.principal, { seats: 3 });
    await w.expectRefusedUnchanged(() => handle.updateClient(org.id, { seats: -2 }), 'input.invalid');
  });

  it('an invitation into a disabled client cannot be accepted, and works again once the provider is enabled', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const org = await w.createClient(provider.id, admin.principal, { ownerEmail: 'olivia@contoso.example' });
    const token = await w.mailedToken('olivia@contoso.example');
    await w.engine.setProviderEnabled(OPERATOR, provider.id, false);
    await w.expectRefusedUnchanged(() => w.engine.acceptInvitation({ token }), 'organization.disabled');
    await w.engine.setProviderEnabled(OPERATOR, provider.id, true);
    const accepted = await w.engine.acceptInvitation({ token });
    expect(accepted.member).toMatchObject({ organizationId: org.id, status: 'accepted' });
  });
});
