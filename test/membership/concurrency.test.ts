/**
 * Races the invariants must survive (style.md "Test the races the anchors allow"): the rules hold
 * when the same changes arrive at once, on PGlite and, where it matters most, on PostgreSQL with a
 * pool of connections.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { OPERATOR, useWorld } from '../support/world.js';

/** Settles every promise and sorts the outcomes into results and refusal codes. */
async function settle<T>(work: readonly Promise<T>[]) {
  const outcomes = await Promise.allSettled(work);
  const fulfilled = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const codes = outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as { code?: string }).code ?? String(o.reason)] : []));
  return { fulfilled, codes };
}

describeEachDriver('concurrency', (driver) => {
  const world = useWorld(driver);

  it('the same email invited 20 times at once becomes exactly one member, with one invitation', async () => {
    const w = world();
    const { org, admin } = await w.managedClient({ seats: 50 });
    const handle = await w.engine.organization(org.id, admin.principal);
    const { fulfilled, codes } = await settle(
      Array.from({ length: 20 }, (_, i) => handle.inviteMembers({ emails: [i % 2 ? 'Dave@Contoso.example' : 'dave@contoso.example'], role: 'user' })),
    );
    expect(codes).toEqual([]);
    expect(fulfilled.flatMap((r) => r.invited)).toHaveLength(1);
    const members = await handle.listMembers({});
    expect(members.data.map((m) => m.email)).toEqual(['dave@contoso.example']);
    expect((await w.eventRows()).filter((r) => r.type === 'member.invited')).toHaveLength(1);
    expect(await w.engine.listOutbox(OPERATOR, { recipient: 'dave@contoso.example' })).toHaveLength(1);
  });

  it('30 different people invited at once into 10 seats make exactly 10 members; the rest are refused', async () => {
    const w = world();
    const { org, admin } = await w.managedClient({ seats: 10 });
    const handle = await w.engine.organization(org.id, admin.principal);
    const { fulfilled, codes } = await settle(
      Array.from({ length: 30 }, (_, i) => handle.inviteMembers({ emails: [`m${i}@contoso.example`], role: 'user' })),
    );
    expect(fulfilled).toHaveLength(10);
    expect(codes).toEqual(Array(20).fill('organization.seat_limit'));
    expect((await handle.listMembers({})).data).toHaveLength(10);
    expect((await w.eventRows()).filter((r) => r.type === 'member.invited')).toHaveLength(10);
  });

  it('restores racing invites for the last seat: the seats are never exceeded', async () => {
    const w = world();
    const { org, admin } = await w.managedClient({ seats: 3 });
    const revoked = [];
    for (const name of ['a', 'b', 'c']) {
      revoked.push(await w.addMember(org.id, admin.principal, { email: `${name}@contoso.example`, status: 'revoked' }));
    }
    await w.addMember(org.id, admin.principal, { email: 'held@contoso.example', status: 'invited' });
    const handle = await w.engine.organization(org.id, admin.principal);
    await settle<unknown>([
      ...revoked.map((r) => handle.restoreMember(r.member.id)),
      ...['x', 'y', 'z'].map((n) => handle.inviteMembers({ emails: [`${n}@contoso.example`], role: 'user' })),
    ]);
    const members = (await handle.listMembers({})).data;
    expect(members.filter((m) => m.status !== 'revoked')).toHaveLength(3);
  });

  it('concurrent revokes of the last two confirmed owners: one succeeds, the other is refused', async () => {
    const w = world();
    const { org, owner } = await w.selfManagedOrg();
    const second = await w.addMember(org.id, owner.person.principal, { email: 'o2@contoso.example', role: 'owner' });
    const operator = await w.engine.organization(org.id, OPERATOR);
    const { fulfilled, codes } = await settle([operator.revokeMember(owner.member.id), operator.revokeMember(second.member.id)]);
    expect(fulfilled).toHaveLength(1);
    expect(codes).toEqual(['organization.last_owner']);
    const confirmedOwners = (await operator.listMembers({})).data.filter((m) => m.role === 'owner' && m.status === 'confirmed');
    expect(confirmedOwners).toHaveLength(1);
  });

  it('two owners revoking each other at once leave one confirmed owner', async () => {
    const w = world();
    const { org, owner } = await w.selfManagedOrg();
    const second = await w.addMember(org.id, owner.person.principal, { email: 'o2@contoso.example', role: 'owner' });
    const asFirst = await w.engine.organization(org.id, owner.person.principal);
    const asSecond = await w.engine.organization(org.id, second.person!.principal);
    const { fulfilled, codes } = await settle([asFirst.revokeMember(second.member.id), asSecond.revokeMember(owner.member.id)]);
    expect(fulfilled).toHaveLength(1);
    // The loser's rights are read again after the lock: it was revoked meanwhile, so it is no one here.
    expect(codes).toEqual(['organization.not_found']);
    const operator = await w.engine.organization(org.id, OPERATOR);
    expect((await operator.listMembers({})).data.filter((m) => m.role === 'owner' && m.status === 'confirmed')).toHaveLength(1);
  });

  it('a demotion and a removal of the last two confirmed owners at once leave one', async () => {
    const w = world();
    const { org, owner } = await w.selfManagedOrg();
    const second = await w.addMember(org.id, owner.person.principal, { email: 'o2@contoso.example', role: 'owner' });
    const operator = await w.engine.organization(org.id, OPERATOR);
    const { fulfilled, codes } = await settle<unknown>([
      operator.updateMember(owner.member.id, { role: 'admin' }),
      operator.removeMember(second.member.id),
    ]);
    expect(fulfilled).toHaveLength(1);
    expect(codes).toEqual(['organization.last_owner']);
    expect((await operator.listMembers({})).data.filter((m) => m.role === 'owner' && m.status === 'confirmed')).toHaveLength(1);
  });

  it('two provider admins removing each other at once leave one confirmed admin', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const bob = await w.addProviderUser(provider.id, admin.principal, { email: 'bob@msp.example', type: 'admin' });
    const asAlice = await w.engine.provider(provider.id, admin.principal);
    const asBob = await w.engine.provider(provider.id, bob.person!.principal);
    const { fulfilled, codes } = await settle([asAlice.removeUser(bob.providerUser.id), asBob.removeUser(admin.providerUserId)]);
    expect(fulfilled).toHaveLength(1);
    // The loser's rights are read again after the lock: it was removed meanwhile.
    expect(codes).toEqual(['provider.not_found']);
    const users = await (await w.engine.provider(provider.id, OPERATOR)).listUsers();
    expect(users.filter((u) => u.type === 'admin' && u.status === 'confirmed')).toHaveLength(1);
  });

  it('the same provider-user email invited at once becomes one provider user', async () => {
    const w = world();
    const { provider, admin } = await w.setUpProvider();
    const handle = await w.engine.provider(provider.id, admin.principal);
    const { codes } = await settle(Array.from({ length: 10 }, () => handle.inviteUsers({ emails: ['bob@msp.example'], type: 'admin' })));
    expect(codes).toEqual([]);
    expect((await handle.listUsers()).filter((u) => u.email === 'bob@msp.example')).toHaveLength(1);
  });

  it('parallel additions to one group keep every member', async () => {
    const w = world();
    const { org, admin } = await w.managedClient({ seats: 30 });
    const handle = await w.engine.organization(org.id, admin.principal);
    const { invited } = await handle.inviteMembers({ emails: Array.from({ length: 20 }, (_, i) => `m${i}@contoso.example`), role: 'user' });
    const group = await handle.createGroup({ name: 'Team' });
    const { codes } = await settle(invited.map((m) => handle.changeGroupMembers(group.id, { add: [m.id] })));
    expect(codes).toEqual([]);
    expect((await handle.getGroup(group.id)).members).toEqual(invited.map((m) => m.id).sort());
  });

  it('a provider user opening a client many times at once records one access event', async () => {
    const w = world();
    const { org, admin } = await w.managedClient();
    const { codes } = await settle(Array.from({ length: 10 }, () => w.engine.organization(org.id, admin.principal)));
    expect(codes).toEqual([]);
    expect((await w.eventRows()).filter((r) => r.type === 'organization.accessed')).toHaveLength(1);
  });

  it('people accepting invitations to two singleOrg organizations at once each join only one', async () => {
    const w = world();
    const { provider, admin, org } = await w.managedClient({ plan: 'enterprise', seats: 20 });
    const second = await w.createClient(provider.id, admin.principal, { name: 'Fabrikam', plan: 'enterprise', seats: 20 });
    // They have accounts already (from an organization they have left), so no account creation serialises them.
    const former = await w.createClient(provider.id, admin.principal, { name: 'Northwind', plan: 'teams', seats: 20 });
    const emails = Array.from({ length: 8 }, (_, i) => `p${i}@contoso.example`);
    for (const email of emails) await w.addMember(former.id, OPERATOR, { email, status: 'revoked' });
    const tokens = new Map<string, string[]>(emails.map((e) => [e, []]));
    for (const id of [org.id, second.id]) {
      w.clock.advance(1000);
      const handle = await w.engine.organization(id, OPERATOR);
      await handle.putPolicy({ type: 'singleOrg', enabled: true });
      await handle.inviteMembers({ emails, role: 'user' });
      for (const email of emails) tokens.get(email)!.push(await w.mailedToken(email));
    }
    const { fulfilled, codes } = await settle([...tokens.values()].flat().map((token) => w.engine.acceptInvitation({ token })));
    expect(codes).toEqual(Array(emails.length).fill('policy.violation'));
    expect(fulfilled.map((r) => r.user.email).sort()).toEqual([...emails].sort());
  });

  it('one invitation token accepted twice at once makes one acceptance', async () => {
    const w = world();
    const { org, admin } = await w.managedClient();
    await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'invited' });
    const token = await w.mailedToken('dave@contoso.example');
    const { fulfilled, codes } = await settle([w.engine.acceptInvitation({ token }), w.engine.acceptInvitation({ token })]);
    expect(fulfilled).toHaveLength(1);
    expect(codes).toEqual(['invitation.invalid']);
    expect((await w.eventRows()).filter((r) => r.type === 'member.accepted')).toHaveLength(1);
  });
});
