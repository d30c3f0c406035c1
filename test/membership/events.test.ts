/**
 * The event log (domain.md "Events"): every change writes its event, with its type, reference
 * code and actor, in the change's own transaction; queries page newest first over a bounded date
 * range; provider-user access is recorded once per hour.
 */
import { describe, expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { DAY, expectCode, MINUTE, OPERATOR, useWorld, type World } from '../support/world.js';
import type { Event } from '../../src/membership/index.js';

describeEachDriver('events', (driver) => {
  const world = useWorld(driver);

  /** The events `work` wrote, as the event log renders them, in writing order. */
  async function recorded(w: World, work: () => Promise<unknown>): Promise<Event[]> {
    const before = await w.eventCount();
    await work();
    const rows = (await w.eventRows()).slice(before);
    const rendered = new Map<string, Event>();
    for (const row of rows) {
      const page = row.organizationId
        ? await (await w.engine.organization(row.organizationId, OPERATOR)).events({ start: row.date, end: row.date })
        : await (await w.engine.provider(row.providerId!, OPERATOR)).events({ start: row.date, end: row.date });
      for (const event of page.data) rendered.set(event.id, event);
    }
    return rows.map((row) => rendered.get(row.id)!);
  }

  describe('each change writes its event', () => {
    it('provider creation, setup and provider-user changes', async () => {
      const w = world();
      const created = await recorded(w, () => w.createProvider({ adminEmail: 'alice@msp.example' }));
      expect(created).toEqual([expect.objectContaining({ type: 'provider.created', code: null, actor: { system: 'api' } })]);
      const providerId = created[0]!.providerId!;

      let apiToken = '';
      const setup = await recorded(w, async () => {
        apiToken = (await w.engine.completeProviderSetup({ token: await w.mailedToken('alice@msp.example') })).apiToken;
      });
      const alice = await w.personOf('alice@msp.example', apiToken);
      const handle = await w.engine.provider(providerId, alice.principal);
      const aliceRow = (await handle.listUsers())[0]!;
      const asAlice = { providerUserId: aliceRow.id, userId: alice.userId };
      expect(setup).toEqual([
        expect.objectContaining({ type: 'provider.setupCompleted', providerId, providerUserId: aliceRow.id, actor: asAlice }),
      ]);

      let bobId = '';
      const invited = await recorded(w, async () => {
        bobId = (await handle.inviteUsers({ emails: ['bob@msp.example'], type: 'admin' })).invited[0]!.id;
      });
      expect(invited).toEqual([
        expect.objectContaining({ type: 'providerUser.invited', code: 1800, providerId, providerUserId: bobId, actor: asAlice }),
      ]);

      w.clock.advance(MINUTE);
      const reinvited = await recorded(w, () => handle.reinviteUser(bobId));
      expect(reinvited).toEqual([expect.objectContaining({ type: 'providerUser.reinvited', code: null, providerUserId: bobId, actor: asAlice })]);

      let bobUserId = '';
      const accepted = await recorded(w, async () => {
        bobUserId = (await w.engine.acceptInvitation({ token: await w.mailedToken('bob@msp.example') })).user.id;
      });
      expect(accepted).toEqual([
        expect.objectContaining({ type: 'providerUser.accepted', providerUserId: bobId, actor: { providerUserId: bobId, userId: bobUserId } }),
      ]);

      expect(await recorded(w, () => handle.confirmUser(bobId))).toEqual([
        expect.objectContaining({ type: 'providerUser.confirmed', code: 1801, providerUserId: bobId, actor: asAlice }),
      ]);
      expect(await recorded(w, () => handle.updateUser(bobId, { type: 'serviceUser' }))).toEqual([
        expect.objectContaining({ type: 'providerUser.updated', code: 1802, providerUserId: bobId, actor: asAlice }),
      ]);
      expect(await recorded(w, () => handle.update({ name: 'Renamed' }))).toEqual([
        expect.objectContaining({ type: 'provider.updated', providerId, actor: asAlice }),
      ]);
      expect(await recorded(w, () => handle.removeUser(bobId))).toEqual([
        expect.objectContaining({ type: 'providerUser.removed', code: 1803, providerUserId: bobId, actor: asAlice }),
      ]);
      expect(await recorded(w, () => w.engine.setProviderEnabled(OPERATOR, providerId, false))).toEqual([
        expect.objectContaining({ type: 'provider.disabled', providerId, actor: { system: 'api' } }),
      ]);
      expect(await recorded(w, () => w.engine.setProviderEnabled(OPERATOR, providerId, true))).toEqual([
        expect.objectContaining({ type: 'provider.enabled', providerId, actor: { system: 'api' } }),
      ]);
    });

    it('client creation, update and unlinking, on both the provider and the organization', async () => {
      const w = world();
      const { provider, admin } = await w.setUpProvider();
      const handle = await w.engine.provider(provider.id, admin.principal);
      const asAlice = { providerUserId: admin.providerUserId, userId: admin.userId };
      let orgId = '';
      const created = await recorded(w, async () => {
        orgId = (await handle.createClient({ name: 'Contoso', plan: 'teams', seats: 5, ownerEmail: 'o@contoso.example', collectionName: 'Shared' })).id;
      });
      expect(created.map((e) => [e.type, e.code])).toEqual([
        ['client.created', 1900],
        ['collection.created', 1300],
        ['member.invited', 1500],
      ]);
      expect(created[0]).toMatchObject({ providerId: provider.id, organizationId: orgId, actor: asAlice });
      expect(created.every((e) => e.organizationId === orgId && 'providerUserId' in e.actor)).toBe(true);

      expect(await recorded(w, () => handle.updateClient(orgId, { seats: 6 }))).toEqual([
        expect.objectContaining({ type: 'organization.updated', code: 1600, providerId: provider.id, organizationId: orgId, actor: asAlice }),
      ]);

      const owner = await w.addMember(orgId, admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
      expect(await recorded(w, () => handle.unlinkClient(orgId))).toEqual([
        expect.objectContaining({ type: 'client.unlinked', code: 1902, providerId: provider.id, organizationId: orgId, actor: asAlice }),
      ]);
      // Both logs show the client's events.
      const providerLog = await handle.events({});
      expect(providerLog.data.map((e) => e.type)).toEqual(expect.arrayContaining(['client.created', 'organization.updated', 'client.unlinked']));
      const orgLog = await (await w.engine.organization(orgId, owner.person!.principal)).events({});
      expect(orgLog.data.map((e) => e.type)).toEqual(expect.arrayContaining(['client.created', 'organization.updated', 'client.unlinked']));
    });

    it('member changes, with the acting member, provider user or system as actor', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ seats: 10 });
      const asAlice = { providerUserId: admin.providerUserId, userId: admin.userId };
      const owner = await w.addMember(org.id, admin.principal, { email: 'olivia@contoso.example', role: 'owner' });
      const asOlivia = { userId: owner.person!.userId };
      const byOwner = await w.engine.organization(org.id, owner.person!.principal);
      const byProvider = await w.engine.organization(org.id, admin.principal);
      const byScim = await w.engine.organizationByScimKey(org.id, await byProvider.issueScimKey('enable'));
      const group = await byOwner.createGroup({ name: 'Team' });

      let daveId = '';
      expect(
        await recorded(w, async () => {
          daveId = (await byOwner.inviteMembers({ emails: ['dave@contoso.example'], role: 'user' })).invited[0]!.id;
        }),
      ).toEqual([expect.objectContaining({ type: 'member.invited', code: 1500, organizationId: org.id, memberId: daveId, actor: asOlivia })]);

      w.clock.advance(MINUTE);
      expect(await recorded(w, () => byProvider.reinviteMember(daveId))).toEqual([
        expect.objectContaining({ type: 'member.reinvited', code: null, memberId: daveId, actor: asAlice }),
      ]);
      let daveUserId = '';
      expect(
        await recorded(w, async () => {
          daveUserId = (await w.engine.acceptInvitation({ token: await w.mailedToken('dave@contoso.example') })).user.id;
        }),
      ).toEqual([expect.objectContaining({ type: 'member.accepted', code: null, memberId: daveId, actor: { userId: daveUserId } })]);
      expect(await recorded(w, () => byProvider.confirmMember(daveId))).toEqual([
        expect.objectContaining({ type: 'member.confirmed', code: 1501, memberId: daveId, actor: asAlice }),
      ]);
      expect(await recorded(w, () => byOwner.updateMember(daveId, { role: 'admin', groups: [group.id] }))).toEqual([
        expect.objectContaining({ type: 'member.updated', code: 1502, memberId: daveId, actor: asOlivia }),
        expect.objectContaining({ type: 'member.groupsUpdated', code: 1504, memberId: daveId, actor: asOlivia }),
      ]);
      expect(await recorded(w, () => byScim.revokeMember(daveId))).toEqual([
        expect.objectContaining({ type: 'member.revoked', code: 1511, memberId: daveId, actor: { system: 'scim' } }),
      ]);
      expect(await recorded(w, () => byScim.restoreMember(daveId))).toEqual([
        expect.objectContaining({ type: 'member.restored', code: 1512, memberId: daveId, actor: { system: 'scim' } }),
      ]);
      expect(await recorded(w, () => byOwner.removeMember(daveId))).toEqual([
        expect.objectContaining({ type: 'member.removed', code: 1503, memberId: daveId, actor: asOlivia }),
      ]);
    });

    it('group, collection and policy changes', async () => {
      const w = world();
      const { org, admin } = await w.managedClient({ plan: 'enterprise' });
      const handle = await w.engine.organization(org.id, admin.principal);
      const actor = { providerUserId: admin.providerUserId, userId: admin.userId };
      const dave = await w.addMember(org.id, admin.principal, { email: 'dave@contoso.example', status: 'invited' });

      let groupId = '';
      expect(await recorded(w, async () => (groupId = (await handle.createGroup({ name: 'G' })).id))).toEqual([
        expect.objectContaining({ type: 'group.created', code: 1400, organizationId: org.id, groupId, actor }),
      ]);
      expect(await recorded(w, () => handle.updateGroup(groupId, { name: 'G2' }))).toEqual([
        expect.objectContaining({ type: 'group.updated', code: 1401, groupId, actor }),
      ]);
      expect(await recorded(w, () => handle.changeGroupMembers(groupId, { add: [dave.member.id] }))).toEqual([
        expect.objectContaining({ type: 'group.updated', code: 1401, groupId, actor }),
      ]);
      expect(await recorded(w, () => handle.deleteGroup(groupId))).toEqual([
        expect.objectContaining({ type: 'group.deleted', code: 1402, groupId, actor }),
      ]);

      let collectionId = '';
      expect(await recorded(w, async () => (collectionId = (await handle.createCollection({ name: 'C' })).id))).toEqual([
        expect.objectContaining({ type: 'collection.created', code: 1300, organizationId: org.id, collectionId, actor }),
      ]);
      expect(await recorded(w, () => handle.updateCollection(collectionId, { name: 'C2' }))).toEqual([
        expect.objectContaining({ type: 'collection.updated', code: 1301, collectionId, actor }),
      ]);
      expect(await recorded(w, () => handle.deleteCollection(collectionId))).toEqual([
        expect.objectContaining({ type: 'collection.deleted', code: 1302, collectionId, actor }),
      ]);

      let policyId = '';
      expect(await recorded(w, async () => (policyId = (await handle.putPolicy({ type: 'singleOrg', enabled: true })).id!))).toEqual([
        expect.objectContaining({ type: 'policy.updated', code: 1700, organizationId: org.id, policyId, actor }),
      ]);
    });

    it('a refused change writes no event, even when part of it had already been done', async () => {
      const w = world();
      const { provider, admin } = await w.setUpProvider();
      const handle = await w.engine.provider(provider.id, admin.principal);
      // The client row and its client.created event are written before the owner does not fit.
      await w.expectRefusedUnchanged(
        () => handle.createClient({ name: 'Tiny', plan: 'teams', seats: 0, ownerEmail: 'o@tiny.example' }),
        'organization.seat_limit',
      );
      // Refusals found before any write leave no event either.
      const org = await w.createClient(provider.id, admin.principal, { seats: 1 });
      const orgHandle = await w.engine.organization(org.id, admin.principal);
      const group = await orgHandle.createGroup({ name: 'G' });
      await w.expectRefusedUnchanged(
        () => orgHandle.updateGroup(group.id, { name: 'Renamed', members: ['00000000-0000-4000-8000-000000000000'] }),
        'input.invalid',
      );
      await w.expectRefusedUnchanged(
        () => orgHandle.inviteMembers({ emails: ['a@x.example', 'b@x.example'], role: 'user' }),
        'organization.seat_limit',
      );
    });
  });

  describe('queries', () => {
    /** An organization with `n` more events than its creation wrote, spread over several instants. */
    async function busyOrganization(w: World, n: number) {
      const { org, admin } = await w.managedClient({ seats: n + 100 });
      const handle = await w.engine.organization(org.id, OPERATOR);
      for (let written = 0; written < n; written += 40) {
        const emails = Array.from({ length: Math.min(40, n - written) }, (_, i) => `m${written + i}@contoso.example`);
        await handle.inviteMembers({ emails, role: 'user' });
        w.clock.advance(MINUTE);
      }
      return { org, admin, handle };
    }

    it('pages of 50, newest first, with a continuation token that walks every event exactly once', async () => {
      const w = world();
      const { org, handle } = await busyOrganization(w, 130);
      const all = (await w.eventRows()).filter((r) => r.organizationId === org.id);
      expect(all.length).toBeGreaterThan(130);

      const seen: Event[] = [];
      const sizes: number[] = [];
      let token: string | undefined;
      do {
        const page = await handle.events({ continuationToken: token });
        sizes.push(page.data.length);
        seen.push(...page.data);
        token = page.continuationToken;
      } while (token);

      expect(sizes.slice(0, -1).every((s) => s === 50)).toBe(true);
      expect(sizes.at(-1)).toBeLessThanOrEqual(50);
      expect(seen.map((e) => e.id)).toHaveLength(all.length);
      expect(new Set(seen.map((e) => e.id))).toEqual(new Set(all.map((r) => r.id)));
      // Newest first; events written together come newest-written first.
      expect(seen.map((e) => e.id)).toEqual([...all].reverse().map((r) => r.id));
    });

    it('a page that ends exactly at the last event has no continuation token', async () => {
      const w = world();
      const { org, handle } = await busyOrganization(w, 10);
      const count = (await w.eventRows()).filter((r) => r.organizationId === org.id).length;
      await handle.inviteMembers({ emails: Array.from({ length: 50 - count }, (_, i) => `x${i}@contoso.example`), role: 'user' });
      const page = await handle.events({});
      expect(page.data).toHaveLength(50);
      expect(page.continuationToken).toBeUndefined();
    });

    it('a malformed continuation token is refused', async () => {
      const w = world();
      const { handle } = await busyOrganization(w, 1);
      await expectCode(handle.events({ continuationToken: 'not-a-token' }), 'input.invalid');
      await expectCode(handle.events({ continuationToken: Buffer.from('["2026-01-01", "x"]').toString('base64url') }), 'input.invalid');
    });

    it('the default range is the last 30 days', async () => {
      const w = world();
      const { org, handle } = await busyOrganization(w, 1);
      const old = (await w.eventRows()).filter((r) => r.organizationId === org.id).map((r) => r.id);
      w.clock.advance(31 * DAY);
      await handle.createCollection({ name: 'Recent' });

      const recent = await handle.events({});
      expect(recent.data.map((e) => e.type)).toEqual(['collection.created']);
      const everything = await handle.events({ start: new Date(w.clock.now.getTime() - 40 * DAY) });
      expect(everything.data.map((e) => e.id)).toEqual(expect.arrayContaining(old));
      // An explicit end alone also looks 30 days back from it.
      const before = await handle.events({ end: new Date(w.clock.now.getTime() - 30 * DAY) });
      expect(new Set(before.data.map((e) => e.id))).toEqual(new Set(old));
    });

    it('a range longer than 367 days, or reversed, is refused', async () => {
      const w = world();
      const { handle } = await busyOrganization(w, 1);
      const end = w.clock.now;
      await expect(handle.events({ start: new Date(end.getTime() - 367 * DAY), end })).resolves.toBeDefined();
      await expectCode(handle.events({ start: new Date(end.getTime() - 367 * DAY - 1), end }), 'input.invalid');
      await expectCode(handle.events({ start: end, end: new Date(end.getTime() - 1) }), 'input.invalid');
    });

    it('the organization log needs accessEventLogs', async () => {
      const w = world();
      const { org } = await busyOrganization(w, 1);
      const reader = await w.addMember(org.id, OPERATOR, { email: 'r@contoso.example', role: 'custom', permissions: { accessEventLogs: true } });
      const other = await w.addMember(org.id, OPERATOR, { email: 'g@contoso.example', role: 'custom', permissions: { manageGroups: true } });
      await expect((await w.engine.organization(org.id, reader.person!.principal)).events({})).resolves.toMatchObject({
        data: expect.any(Array),
      });
      await expectCode((await w.engine.organization(org.id, other.person!.principal)).events({}), 'auth.permission_denied');
    });

    it("a provider's log holds its own events only, and an organization's log its own", async () => {
      const w = world();
      const a = await w.managedClient();
      const other = await w.setUpProvider({ adminEmail: 'zed@b.example' });
      const otherOrg = await w.createClient(other.provider.id, other.admin.principal, { name: 'Fabrikam' });
      await (await w.engine.organization(otherOrg.id, OPERATOR)).createCollection({ name: 'Theirs' });
      const aLog = await (await w.engine.provider(a.provider.id, a.admin.principal)).events({});
      expect(aLog.data.length).toBeGreaterThan(0);
      expect(aLog.data.every((e) => e.providerId === a.provider.id)).toBe(true);
      const orgLog = await (await w.engine.organization(a.org.id, OPERATOR)).events({});
      expect(orgLog.data.length).toBeGreaterThan(0);
      expect(orgLog.data.every((e) => e.organizationId === a.org.id)).toBe(true);
    });
  });

  describe('provider access', () => {
    it('a provider user opening a client records one access event per hour, on both logs', async () => {
      const w = world();
      const { provider, admin, org } = await w.managedClient();
      const accessEvents = async () => (await w.eventRows()).filter((r) => r.type === 'organization.accessed');

      await w.engine.organization(org.id, admin.principal);
      await w.engine.organization(org.id, admin.principal);
      w.clock.advance(59 * MINUTE);
      await w.engine.organization(org.id, admin.principal);
      expect(await accessEvents()).toHaveLength(1);

      w.clock.advance(2 * MINUTE);
      await w.engine.organization(org.id, admin.principal);
      expect(await accessEvents()).toHaveLength(2);

      const orgLog = await (await w.engine.organization(org.id, OPERATOR)).events({});
      const providerLog = await (await w.engine.provider(provider.id, admin.principal)).events({});
      for (const log of [orgLog, providerLog]) {
        const accesses = log.data.filter((e) => e.type === 'organization.accessed');
        expect(accesses).toHaveLength(2);
        expect(accesses[0]).toMatchObject({
          code: 1603,
          providerId: provider.id,
          organizationId: org.id,
          actor: { providerUserId: admin.providerUserId, userId: admin.userId },
        });
      }
    });

    it('access is counted per provider user and per organization; members and the operator record none', async () => {
      const w = world();
      const { provider, admin, org } = await w.managedClient();
      const second = await w.createClient(provider.id, admin.principal, { name: 'Fabrikam' });
      const { person: sam } = await w.addProviderUser(provider.id, admin.principal, { email: 'sam@msp.example', type: 'serviceUser' });
      const member = await w.addMember(org.id, OPERATOR, { email: 'adm@contoso.example', role: 'admin' });
      const before = (await w.eventRows()).filter((r) => r.type === 'organization.accessed').length;

      await w.engine.organization(org.id, admin.principal);
      await w.engine.organization(second.id, admin.principal);
      await w.engine.organization(org.id, sam!.principal);
      await w.engine.organization(org.id, member.person!.principal);
      await w.engine.organization(org.id, OPERATOR);
      const accesses = (await w.eventRows()).filter((r) => r.type === 'organization.accessed').slice(before);
      expect(accesses.map((r) => [r.actorUserId, r.organizationId])).toEqual(
        expect.arrayContaining([
          [admin.userId, org.id],
          [admin.userId, second.id],
          [sam!.userId, org.id],
        ]),
      );
      expect(accesses).toHaveLength(3);
    });
  });
});
