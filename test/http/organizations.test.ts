/**
 * /api/v1/organizations/:oid…: members, groups, collections, policies and events through the real
 * app, each success beside its refusals (401 and unknown ids live in route-table.test.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  acceptedMember,
  confirmedMember,
  countEvents,
  countMails,
  createClient,
  expectProblem,
  invitedMember,
  membersOf,
  must,
  setupProvider,
  tableCounts,
  uniqueEmail,
  type ClientInput,
} from '../support/http-seed.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describeEachDriver('organization routes', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(() => t.close());

  /** A fresh provider with one client; `token` is the provider admin's (an owner there). */
  async function freshOrg(input: ClientInput = {}) {
    const p = await setupProvider(t);
    const org = await createClient(t, p, input);
    // The admin's first request records the hourly access event now, so that later
    // "nothing changed" snapshots see only what the request under test did.
    must(await t.request('GET', `/api/v1/organizations/${org.id}`, { token: p.adminToken }), 200, 'first access');
    return { p, oid: org.id, token: p.adminToken, base: `/api/v1/organizations/${org.id}` };
  }

  const post = (path: string, token: string, body?: unknown) =>
    t.request('POST', path, { token, ...(body !== undefined ? { body } : {}) });

  // ---- the organization -----------------------------------------------------------------------

  it('the organization is shown to its provider users, confirmed members and the operator, and to nobody still joining (404)', async () => {
    const { oid, token, base } = await freshOrg({ plan: 'teams', seats: 7 });
    const confirmed = await confirmedMember(t, oid, token);
    const accepted = await acceptedMember(t, oid, token);
    for (const who of [token, confirmed.token, SYSTEM_TOKEN]) {
      const res = await t.request('GET', base, { token: who });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: oid, identifier: expect.any(String), plan: 'teams', seats: 7, status: 'managed' });
    }
    expectProblem(await t.request('GET', base, { token: accepted.token }), 404, 'organization.not_found');
  });

  // ---- members --------------------------------------------------------------------------------

  it('inviting members answers 201 with the invited (lower-cased, mailed) and the skipped, with their groups and collection access', async () => {
    const { token, base } = await freshOrg();
    const group = must(await post(`${base}/groups`, token, { name: 'Engineering' }), 201, 'group');
    const collection = must(await post(`${base}/collections`, token, { name: 'Secrets' }), 201, 'collection');
    const a = uniqueEmail('a');
    const b = uniqueEmail('b');
    const invited = await post(`${base}/members`, token, {
      emails: [a.toUpperCase(), b, a],
      role: 'user',
      groups: [group.id],
      collections: [{ id: collection.id, readOnly: true }],
    });
    expect(invited.status).toBe(201);
    expect(invited.body.skipped).toEqual([]);
    expect(invited.body.invited).toEqual([
      expect.objectContaining({ id: expect.stringMatching(UUID), email: a, role: 'user', roleCode: 2, status: 'invited', statusCode: 0 }),
      expect.objectContaining({ email: b, status: 'invited' }),
    ]);
    expect(await countMails(t, a)).toBe(1);

    const member = await t.request('GET', `${base}/members/${invited.body.invited[0].id}`, { token });
    expect(member.status).toBe(200);
    expect(member.body).toMatchObject({
      id: invited.body.invited[0].id,
      groups: [group.id],
      collections: [{ id: collection.id, readOnly: true, hidePasswords: false, manage: false }],
    });

    const again = await post(`${base}/members`, token, { emails: [a], role: 'admin' });
    expect(again.status).toBe(201);
    expect(again.body).toEqual({ invited: [], skipped: [a] });
    expect(await countMails(t, a)).toBe(1);
  });

  it('members come in pages of 100 whose continuationToken walks every member once, filtered by status or email', async () => {
    const { token, base } = await freshOrg({ seats: 200 });
    const emails: string[] = [];
    for (let batch = 0; batch < 6; batch++) {
      const chunk = Array.from({ length: batch < 5 ? 20 : 3 }, () => uniqueEmail('page'));
      must(await post(`${base}/members`, token, { emails: chunk, role: 'user' }), 201, 'invite batch');
      emails.push(...chunk);
      t.clock.advance(1);
    }
    const first = await t.request('GET', `${base}/members`, { token });
    expect(first.status).toBe(200);
    expect(first.body.data).toHaveLength(100);
    expect(first.body.continuationToken).toEqual(expect.any(String));
    const second = await t.request('GET', `${base}/members?continuationToken=${encodeURIComponent(first.body.continuationToken)}`, { token });
    expect(second.status).toBe(200);
    expect(second.body.data).toHaveLength(3);
    expect(second.body.continuationToken).toBeUndefined();
    const seen = [...first.body.data, ...second.body.data].map((m: { email: string }) => m.email);
    expect(new Set(seen).size).toBe(103);
    expect([...seen].sort()).toEqual([...emails].sort());

    const revokedId = first.body.data[0].id as string;
    must(await post(`${base}/members/${revokedId}/revoke`, token), 200, 'revoke');
    const revoked = await t.request('GET', `${base}/members?status=revoked`, { token });
    expect(revoked.body).toEqual({ data: [expect.objectContaining({ id: revokedId, status: 'revoked', statusCode: -1 })] });
    const byEmail = await t.request('GET', `${base}/members?email=${encodeURIComponent(emails[50]!.toUpperCase())}`, { token });
    expect(byEmail.body.data.map((m: { email: string }) => m.email)).toEqual([emails[50]]);

    expectProblem(await t.request('GET', `${base}/members?continuationToken=bm90LWpzb24`, { token }), 400, 'input.invalid');
    expectProblem(await t.request('GET', `${base}/members?status=deleted`, { token }), 400, 'request.invalid');
  });

  it('a member goes invited → accepted → confirmed → revoked → restored, and every step out of order is refused with 409', async () => {
    const { oid, token, base } = await freshOrg();
    const { memberId, email } = await invitedMember(t, oid, token);
    const act = (verb: string) => post(`${base}/members/${memberId}/${verb}`, token);

    expectProblem(await act('confirm'), 409, 'status.invalid');
    expectProblem(await act('restore'), 409, 'status.invalid');
    const accepted = await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email), name: 'Dana' } });
    expect(accepted.status).toBe(200);
    expect(accepted.body.member).toMatchObject({ id: memberId, status: 'accepted', statusCode: 1, name: 'Dana' });
    expectProblem(await act('reinvite'), 409, 'status.invalid');

    const confirmed = await act('confirm');
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ id: memberId, status: 'confirmed', statusCode: 2 });
    expectProblem(await act('confirm'), 409, 'status.invalid');
    expect((await t.request('GET', base, { token: accepted.body.apiToken })).status).toBe(200);

    const revoked = await act('revoke');
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ status: 'revoked', statusCode: -1, previousStatus: 'confirmed' });
    expectProblem(await act('revoke'), 409, 'status.invalid');
    expectProblem(await t.request('GET', base, { token: accepted.body.apiToken }), 404, 'organization.not_found');

    const restored = await act('restore');
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ status: 'confirmed', previousStatus: null });

    const events = (await t.request('GET', `${base}/events`, { token: SYSTEM_TOKEN })).body.data
      .filter((e: { memberId?: string }) => e.memberId === memberId)
      .map((e: { type: string; code: number | null }) => [e.type, e.code]);
    expect(events).toEqual([
      ['member.restored', 1512],
      ['member.revoked', 1511],
      ['member.confirmed', 1501],
      ['member.accepted', null],
      ['member.invited', 1500],
    ]);
  });

  it('reinviting an invited member mails a fresh token and retires the old one', async () => {
    const { oid, token, base } = await freshOrg();
    const { memberId, email } = await invitedMember(t, oid, token);
    const old = await t.mailedToken(email);
    // mailedToken reads the newest mail by time: let the second one be younger.
    t.clock.advance(1);
    const res = await post(`${base}/members/${memberId}/reinvite`, token);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: memberId, status: 'invited' });
    expect(await countMails(t, email)).toBe(2);
    expectProblem(await t.request('POST', '/api/v1/invitations/accept', { body: { token: old } }), 400, 'invitation.invalid');
    const accepted = await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email) } });
    expect(accepted.status).toBe(200);
  });

  it('PATCH changes a member\'s role, groups and collection access, writing member.updated and member.groupsUpdated', async () => {
    const { oid, token, base } = await freshOrg();
    const g1 = must(await post(`${base}/groups`, token, { name: 'One' }), 201, 'g1');
    const g2 = must(await post(`${base}/groups`, token, { name: 'Two' }), 201, 'g2');
    const c = must(await post(`${base}/collections`, token, { name: 'Vault' }), 201, 'c');
    const { memberId } = await invitedMember(t, oid, token);

    const patched = await t.request('PATCH', `${base}/members/${memberId}`, {
      token,
      body: { role: 'admin', groups: [g2.id, g1.id], collections: [{ id: c.id, manage: true }], name: 'Pat' },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      id: memberId,
      role: 'admin',
      roleCode: 1,
      name: 'Pat',
      groups: [g1.id, g2.id].sort(),
      collections: [{ id: c.id, readOnly: false, hidePasswords: false, manage: true }],
    });
    const group = await t.request('GET', `${base}/groups/${g1.id}`, { token });
    expect(group.body.members).toEqual([memberId]);

    const types = (await t.request('GET', `${base}/events`, { token: SYSTEM_TOKEN })).body.data
      .filter((e: { memberId?: string }) => e.memberId === memberId)
      .map((e: { type: string }) => e.type);
    expect(types.slice(0, 2).sort()).toEqual(['member.groupsUpdated', 'member.updated']);

    const cleared = await t.request('PATCH', `${base}/members/${memberId}`, { token, body: { groups: [] } });
    expect(cleared.body.groups).toEqual([]);
  });

  it('removing a member answers 204, frees its seat and leaves its id unknown (404)', async () => {
    const { oid, token, base } = await freshOrg({ seats: 1 });
    const { memberId } = await invitedMember(t, oid, token);
    expectProblem(await post(`${base}/members`, token, { emails: [uniqueEmail()], role: 'user' }), 409, 'organization.seat_limit');

    const removed = await t.request('DELETE', `${base}/members/${memberId}`, { token });
    expect(removed.status).toBe(204);
    expectProblem(await t.request('GET', `${base}/members/${memberId}`, { token }), 404, 'member.not_found');
    expectProblem(await t.request('DELETE', `${base}/members/${memberId}`, { token }), 404, 'member.not_found');
    expect((await post(`${base}/members`, token, { emails: [uniqueEmail()], role: 'user' })).status).toBe(201);
    expect((await countEvents(t, { organizationId: oid, type: 'member.removed' }))).toBe(1);
  });

  it('an invite beyond the seats is refused with 409 and invites nobody; revoking frees a seat; restoring into a full organization is refused', async () => {
    const { oid, token, base } = await freshOrg({ seats: 2 });
    const before = await tableCounts(t);
    const tooMany = await post(`${base}/members`, token, { emails: [uniqueEmail(), uniqueEmail(), uniqueEmail()], role: 'user' });
    expectProblem(tooMany, 409, 'organization.seat_limit');
    expect(tooMany.body.errors).toEqual({ seats: 2, used: 0, requested: 3 });
    expect(await tableCounts(t)).toEqual(before);

    const first = await invitedMember(t, oid, token);
    await invitedMember(t, oid, token);
    must(await post(`${base}/members/${first.memberId}/revoke`, token), 200, 'revoke');
    await invitedMember(t, oid, token);
    const events = await countEvents(t, { organizationId: oid });
    expectProblem(await post(`${base}/members/${first.memberId}/restore`, token), 409, 'organization.seat_limit');
    expect((await t.request('GET', `${base}/members/${first.memberId}`, { token })).body.status).toBe('revoked');
    expect(await countEvents(t, { organizationId: oid })).toBe(events);
    expect((await membersOf(t, oid)).filter((m) => m.status !== 'revoked')).toHaveLength(2);
  });

  it('a member with the user role sees the organization itself but nothing it administers (403)', async () => {
    const { oid, token, base } = await freshOrg();
    const user = await confirmedMember(t, oid, token, { role: 'user' });
    const g = must(await post(`${base}/groups`, token, { name: 'G' }), 201, 'g');
    const c = must(await post(`${base}/collections`, token, { name: 'C' }), 201, 'c');
    expect((await t.request('GET', base, { token: user.token })).status).toBe(200);
    const before = await tableCounts(t);
    const refused = [
      await t.request('GET', `${base}/members`, { token: user.token }),
      await t.request('GET', `${base}/members/${user.memberId}`, { token: user.token }),
      await t.request('GET', `${base}/groups`, { token: user.token }),
      await t.request('GET', `${base}/groups/${g.id}`, { token: user.token }),
      await t.request('GET', `${base}/collections`, { token: user.token }),
      await t.request('GET', `${base}/collections/${c.id}`, { token: user.token }),
      await t.request('GET', `${base}/policies`, { token: user.token }),
      await t.request('GET', `${base}/events`, { token: user.token }),
      await post(`${base}/members`, user.token, { emails: [uniqueEmail()], role: 'user' }),
      await post(`${base}/groups`, user.token, { name: 'Mine' }),
      await post(`${base}/collections`, user.token, { name: 'Mine' }),
      await t.request('PUT', `${base}/policies/singleOrg`, { token: user.token, body: { enabled: true } }),
    ];
    for (const res of refused) expectProblem(res, 403, 'auth.permission_denied');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('an admin may not invite, promote or touch owners (403 member.owner_required), and nobody acts on themselves (403)', async () => {
    const { oid, token, base } = await freshOrg();
    const admin = await confirmedMember(t, oid, token, { role: 'admin' });
    const owner = await confirmedMember(t, oid, token, { role: 'owner' });
    const user = await invitedMember(t, oid, token);
    const before = await tableCounts(t);

    expectProblem(await post(`${base}/members`, admin.token, { emails: [uniqueEmail()], role: 'owner' }), 403, 'member.owner_required');
    expectProblem(
      await t.request('PATCH', `${base}/members/${user.memberId}`, { token: admin.token, body: { role: 'owner' } }),
      403,
      'member.owner_required',
    );
    expectProblem(await post(`${base}/members/${owner.memberId}/revoke`, admin.token), 403, 'member.owner_required');
    expectProblem(await t.request('DELETE', `${base}/members/${owner.memberId}`, { token: admin.token }), 403, 'member.owner_required');
    for (const verb of ['revoke', 'restore', 'confirm']) {
      expectProblem(await post(`${base}/members/${admin.memberId}/${verb}`, admin.token), 403, 'member.self_action');
    }
    expectProblem(await t.request('DELETE', `${base}/members/${owner.memberId}`, { token: owner.token }), 403, 'member.self_action');
    expect(await tableCounts(t)).toEqual(before);

    // What an admin may do: manage users.
    expect((await post(`${base}/members/${user.memberId}/revoke`, admin.token)).status).toBe(200);
  });

  it('a custom member with manageUsers manages users but not admins, and grants only the flags it holds (403)', async () => {
    const { oid, token, base } = await freshOrg();
    const manager = await confirmedMember(t, oid, token, { role: 'custom', permissions: { manageUsers: true, manageGroups: true } });
    const admin = await invitedMember(t, oid, token, { role: 'admin' });
    const before = await tableCounts(t);

    expectProblem(await post(`${base}/members`, manager.token, { emails: [uniqueEmail()], role: 'admin' }), 403, 'auth.permission_denied');
    expectProblem(await post(`${base}/members/${admin.memberId}/revoke`, manager.token), 403, 'auth.permission_denied');
    expectProblem(
      await post(`${base}/members`, manager.token, { emails: [uniqueEmail()], role: 'custom', permissions: { managePolicies: true } }),
      403,
      'auth.permission_denied',
    );
    expectProblem(await t.request('GET', `${base}/policies`, { token: manager.token }), 403, 'auth.permission_denied');
    expect(await tableCounts(t)).toEqual(before);

    const granted = await post(`${base}/members`, manager.token, {
      emails: [uniqueEmail()],
      role: 'custom',
      permissions: { manageGroups: true, managePolicies: false },
    });
    expect(granted.status).toBe(201);
    expect(granted.body.invited[0]).toMatchObject({ role: 'custom', roleCode: 4, permissions: { manageGroups: true } });
    expect(granted.body.invited[0].permissions).toEqual({ manageGroups: true });
  });

  it('a Teams organization refuses custom roles and policies with 403 organization.plan_feature', async () => {
    const { oid, token, base } = await freshOrg({ plan: 'teams' });
    const { memberId } = await invitedMember(t, oid, token);
    const before = await tableCounts(t);
    expectProblem(await post(`${base}/members`, token, { emails: [uniqueEmail()], role: 'custom' }), 403, 'organization.plan_feature');
    expectProblem(
      await t.request('PATCH', `${base}/members/${memberId}`, { token, body: { role: 'custom', permissions: { manageUsers: true } } }),
      403,
      'organization.plan_feature',
    );
    expectProblem(await t.request('GET', `${base}/policies`, { token }), 403, 'organization.plan_feature');
    expectProblem(await t.request('PUT', `${base}/policies/singleOrg`, { token, body: { enabled: true } }), 403, 'organization.plan_feature');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('the last confirmed owner of a self-managed organization is never revoked, demoted or removed (409)', async () => {
    const { p, oid, token, base } = await freshOrg();
    const owner = await confirmedMember(t, oid, token, { role: 'owner' });
    must(await t.request('DELETE', `/api/v1/providers/${p.pid}/clients/${oid}`, { token }), 200, 'unlink');
    const before = await tableCounts(t);
    expectProblem(await post(`${base}/members/${owner.memberId}/revoke`, SYSTEM_TOKEN), 409, 'organization.last_owner');
    expectProblem(
      await t.request('PATCH', `${base}/members/${owner.memberId}`, { token: SYSTEM_TOKEN, body: { role: 'admin' } }),
      409,
      'organization.last_owner',
    );
    expectProblem(await t.request('DELETE', `${base}/members/${owner.memberId}`, { token: SYSTEM_TOKEN }), 409, 'organization.last_owner');
    expect(await tableCounts(t)).toEqual(before);
    expect((await t.request('GET', `${base}/members/${owner.memberId}`, { token: owner.token })).body).toMatchObject({
      role: 'owner',
      status: 'confirmed',
    });

    // With a second confirmed owner, the first may go.
    const second = await confirmedMember(t, oid, owner.token, { role: 'owner' });
    expect((await post(`${base}/members/${owner.memberId}/revoke`, second.token)).status).toBe(200);
  });

  // ---- groups ---------------------------------------------------------------------------------

  it('groups are created (201), listed, read with members and access, changed (sets replaced) and deleted (204)', async () => {
    const { oid, token, base } = await freshOrg();
    const m1 = await invitedMember(t, oid, token);
    const m2 = await invitedMember(t, oid, token);
    const c = must(await post(`${base}/collections`, token, { name: 'Shared' }), 201, 'collection');

    const created = await post(`${base}/groups`, token, {
      name: 'Support',
      externalId: 'grp-1',
      members: [m1.memberId],
      collections: [{ id: c.id, hidePasswords: true }],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(UUID),
      organizationId: oid,
      name: 'Support',
      externalId: 'grp-1',
      members: [m1.memberId],
      collections: [{ id: c.id, readOnly: false, hidePasswords: true, manage: false }],
    });
    const gid = created.body.id as string;

    const list = await t.request('GET', `${base}/groups`, { token });
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ data: [expect.objectContaining({ id: gid, name: 'Support' })] });

    const changed = await t.request('PATCH', `${base}/groups/${gid}`, { token, body: { name: 'Help desk', members: [m2.memberId], collections: [] } });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ id: gid, name: 'Help desk', externalId: 'grp-1', members: [m2.memberId], collections: [] });
    expect((await t.request('GET', `${base}/groups/${gid}`, { token })).body.members).toEqual([m2.memberId]);

    const deleted = await t.request('DELETE', `${base}/groups/${gid}`, { token });
    expect(deleted.status).toBe(204);
    expectProblem(await t.request('GET', `${base}/groups/${gid}`, { token }), 404, 'group.not_found');
    expectProblem(await t.request('DELETE', `${base}/groups/${gid}`, { token }), 404, 'group.not_found');
    expect((await t.request('GET', `${base}/members/${m2.memberId}`, { token })).body.groups).toEqual([]);

    const types = (await t.request('GET', `${base}/events`, { token: SYSTEM_TOKEN })).body.data
      .filter((e: { groupId?: string }) => e.groupId === gid)
      .map((e: { type: string; code: number }) => [e.type, e.code]);
    expect(types).toEqual([
      ['group.deleted', 1402],
      ['group.updated', 1401],
      ['group.created', 1400],
    ]);
  });

  it('a group name or externalId already used in the organization is refused with 409 and nothing is created', async () => {
    const { token, base } = await freshOrg();
    const first = must(await post(`${base}/groups`, token, { name: 'Alpha', externalId: 'dup' }), 201, 'group');
    const second = must(await post(`${base}/groups`, token, { name: 'Beta' }), 201, 'group');
    const before = await tableCounts(t);
    expectProblem(await post(`${base}/groups`, token, { name: 'Gamma', externalId: 'dup' }), 409, 'conflict');
    expectProblem(await post(`${base}/groups`, token, { name: 'ALPHA' }), 409, 'conflict');
    expectProblem(await t.request('PATCH', `${base}/groups/${second.id}`, { token, body: { name: 'alpha' } }), 409, 'conflict');
    expect(await tableCounts(t)).toEqual(before);
    expect((await t.request('GET', `${base}/groups/${second.id}`, { token })).body.name).toBe('Beta');
    expect((await t.request('GET', `${base}/groups/${first.id}`, { token })).body.externalId).toBe('dup');
  });

  it('unknown member or collection ids in a group are refused with 400 naming them, and nothing is linked', async () => {
    const { oid, token, base } = await freshOrg();
    const m = await invitedMember(t, oid, token);
    const g = must(await post(`${base}/groups`, token, { name: 'G', members: [m.memberId] }), 201, 'group');
    const ghost = '00000000-0000-4000-8000-000000000001';
    const before = await tableCounts(t);

    const badMember = await t.request('PATCH', `${base}/groups/${g.id}`, { token, body: { members: [m.memberId, ghost, 'nope'] } });
    expectProblem(badMember, 400, 'input.invalid');
    expect(badMember.body.errors).toEqual({ member: expect.arrayContaining([ghost, 'nope']) });
    const badCollection = await post(`${base}/groups`, token, { name: 'H', collections: [{ id: ghost }] });
    expectProblem(badCollection, 400, 'input.invalid');
    expect(badCollection.body.errors).toEqual({ collection: [ghost] });

    expect(await tableCounts(t)).toEqual(before);
    expect((await t.request('GET', `${base}/groups/${g.id}`, { token })).body.members).toEqual([m.memberId]);
  });

  it('group changes need manageGroups: a custom member without it is refused with 403', async () => {
    const { oid, token, base } = await freshOrg();
    const viewer = await confirmedMember(t, oid, token, { role: 'custom', permissions: { accessReports: true } });
    const g = must(await post(`${base}/groups`, token, { name: 'G' }), 201, 'group');
    expect((await t.request('GET', `${base}/groups`, { token: viewer.token })).status).toBe(200);
    const before = await tableCounts(t);
    expectProblem(await post(`${base}/groups`, viewer.token, { name: 'X' }), 403, 'auth.permission_denied');
    expectProblem(await t.request('PATCH', `${base}/groups/${g.id}`, { token: viewer.token, body: { name: 'X' } }), 403, 'auth.permission_denied');
    expectProblem(await t.request('DELETE', `${base}/groups/${g.id}`, { token: viewer.token }), 403, 'auth.permission_denied');
    expect(await tableCounts(t)).toEqual(before);
  });

  // ---- collections ----------------------------------------------------------------------------

  it('collections are created (201), listed, read, renamed and deleted (204), each with its event', async () => {
    const { oid, token, base } = await freshOrg();
    const created = await post(`${base}/collections`, token, { name: 'Finance', externalId: 'col-1' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.stringMatching(UUID), organizationId: oid, name: 'Finance', externalId: 'col-1' });
    const cid = created.body.id as string;

    expect((await t.request('GET', `${base}/collections`, { token })).body).toEqual({ data: [expect.objectContaining({ id: cid })] });
    expect((await t.request('GET', `${base}/collections/${cid}`, { token })).body).toMatchObject({ id: cid, name: 'Finance' });
    const renamed = await t.request('PATCH', `${base}/collections/${cid}`, { token, body: { name: 'Accounts' } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: cid, name: 'Accounts', externalId: 'col-1' });
    expect((await t.request('DELETE', `${base}/collections/${cid}`, { token })).status).toBe(204);
    expectProblem(await t.request('GET', `${base}/collections/${cid}`, { token }), 404, 'collection.not_found');
    expect(await countEvents(t, { organizationId: oid, type: 'collection.created' })).toBe(1);
    expect(await countEvents(t, { organizationId: oid, type: 'collection.updated' })).toBe(1);
    expect(await countEvents(t, { organizationId: oid, type: 'collection.deleted' })).toBe(1);
  });

  it('a custom member may create collections with createNewCollections but not delete them without deleteAnyCollection (403)', async () => {
    const { oid, token, base } = await freshOrg();
    const creator = await confirmedMember(t, oid, token, { role: 'custom', permissions: { createNewCollections: true } });
    const made = await post(`${base}/collections`, creator.token, { name: 'Mine' });
    expect(made.status).toBe(201);
    const before = await tableCounts(t);
    expectProblem(await t.request('DELETE', `${base}/collections/${made.body.id}`, { token: creator.token }), 403, 'auth.permission_denied');
    expectProblem(
      await t.request('PATCH', `${base}/collections/${made.body.id}`, { token: creator.token, body: { name: 'X' } }),
      403,
      'auth.permission_denied',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  // ---- policies -------------------------------------------------------------------------------

  it('policies list every type (disabled until stored) and PUT enables one with validated data', async () => {
    const { oid, token, base } = await freshOrg();
    const listed = await t.request('GET', `${base}/policies`, { token });
    expect(listed.status).toBe(200);
    expect(listed.body.data).toHaveLength(11);
    expect(listed.body.data[0]).toEqual({ id: null, type: 'twoFactorAuthentication', typeCode: 0, enabled: false, data: null, updatedAt: null });

    const put = await t.request('PUT', `${base}/policies/masterPassword`, {
      token,
      body: { enabled: true, data: { minLength: 14, requireUpper: true } },
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ id: expect.stringMatching(UUID), type: 'masterPassword', typeCode: 1, enabled: true, data: { minLength: 14, requireUpper: true } });
    const after = (await t.request('GET', `${base}/policies`, { token })).body.data;
    expect(after.find((p: { type: string }) => p.type === 'masterPassword')).toMatchObject({ id: put.body.id, enabled: true });
    expect(await countEvents(t, { organizationId: oid, type: 'policy.updated' })).toBe(1);
  });

  it('policy data out of range, unknown data fields and unknown types are refused with 400; nothing is stored', async () => {
    const { token, base } = await freshOrg();
    const before = await tableCounts(t);
    const bad = await t.request('PUT', `${base}/policies/masterPassword`, {
      token,
      body: { enabled: true, data: { minLength: 3, minComplexity: 9, sparkle: true } },
    });
    expectProblem(bad, 400, 'input.invalid');
    expect(bad.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['data.minComplexity', 'data.minLength', 'data.sparkle']);
    expectProblem(await t.request('PUT', `${base}/policies/noSuchPolicy`, { token, body: { enabled: true } }), 400, 'input.invalid');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('a policy cannot be enabled while one it needs is off, nor the needed one disabled under it (409)', async () => {
    const { token, base } = await freshOrg();
    const before = await tableCounts(t);
    expectProblem(await t.request('PUT', `${base}/policies/requireSso`, { token, body: { enabled: true } }), 409, 'policy.dependency');
    expect(await tableCounts(t)).toEqual(before);
    must(await t.request('PUT', `${base}/policies/singleOrg`, { token, body: { enabled: true } }), 200, 'singleOrg');
    must(await t.request('PUT', `${base}/policies/requireSso`, { token, body: { enabled: true } }), 200, 'requireSso');
    expectProblem(await t.request('PUT', `${base}/policies/singleOrg`, { token, body: { enabled: false } }), 409, 'policy.dependency');
    const singleOrg = (await t.request('GET', `${base}/policies`, { token })).body.data.find((p: { type: string }) => p.type === 'singleOrg');
    expect(singleOrg.enabled).toBe(true);
  });

  // ---- SCIM endpoint configuration ------------------------------------------------------------

  it('SCIM is enabled with a key shown once, rotated (the old key stops at once) and disabled (204)', async () => {
    const { oid, token, base } = await freshOrg();
    const scimUsers = (key: string) => t.request('GET', `/scim/v2/${oid}/Users`, { token: key });
    expect((await t.request('GET', `${base}/scim`, { token })).body).toEqual({
      enabled: false,
      createdAt: null,
      updatedAt: null,
      baseUrl: `http://portico.test/scim/v2/${oid}`,
    });

    const enabled = await post(`${base}/scim`, token);
    expect(enabled.status).toBe(200);
    expect(enabled.body).toEqual({ baseUrl: `http://portico.test/scim/v2/${oid}`, token: expect.stringMatching(/^scim_/) });
    expect((await scimUsers(enabled.body.token)).status).toBe(200);
    expect((await t.request('GET', `${base}/scim`, { token })).body.enabled).toBe(true);

    // Enabling again would silently replace a working key: 409, pointing at rotate, and the key keeps working.
    const again = await post(`${base}/scim`, token);
    expectProblem(again, 409, 'conflict');
    expect(again.body.detail).toMatch(/scim\/rotate/);
    expect((await scimUsers(enabled.body.token)).status).toBe(200);

    const rotated = await post(`${base}/scim/rotate`, token);
    expect(rotated.status).toBe(200);
    expect(rotated.body.token).not.toBe(enabled.body.token);
    expect((await scimUsers(enabled.body.token)).status).toBe(401);
    expect((await scimUsers(rotated.body.token)).status).toBe(200);

    const disabled = await t.request('DELETE', `${base}/scim`, { token });
    expect(disabled.status).toBe(204);
    expect((await scimUsers(rotated.body.token)).status).toBe(401);
    expect((await t.request('GET', `${base}/scim`, { token })).body.enabled).toBe(false);
  });

  it('SCIM configuration needs manageScim: a custom member without it is refused with 403 and no key is issued', async () => {
    const { oid, token, base } = await freshOrg();
    const manager = await confirmedMember(t, oid, token, { role: 'custom', permissions: { manageUsers: true } });
    const before = await tableCounts(t);
    expectProblem(await t.request('GET', `${base}/scim`, { token: manager.token }), 403, 'auth.permission_denied');
    expectProblem(await post(`${base}/scim`, manager.token), 403, 'auth.permission_denied');
    expectProblem(await post(`${base}/scim/rotate`, manager.token), 403, 'auth.permission_denied');
    expectProblem(await t.request('DELETE', `${base}/scim`, { token: manager.token }), 403, 'auth.permission_denied');
    expect(await tableCounts(t)).toEqual(before);
  });

  // ---- events ---------------------------------------------------------------------------------

  it('the organization event log answers {data} to owners, admins and custom members with accessEventLogs', async () => {
    const { oid, token, base } = await freshOrg();
    const admin = await confirmedMember(t, oid, token, { role: 'admin' });
    const auditor = await confirmedMember(t, oid, token, { role: 'custom', permissions: { accessEventLogs: true } });
    for (const who of [token, admin.token, auditor.token]) {
      const res = await t.request('GET', `${base}/events`, { token: who });
      expect(res.status).toBe(200);
      expect(res.body.data.length).toBeGreaterThan(0);
      expect(res.body.data.every((e: { organizationId: string }) => e.organizationId === oid)).toBe(true);
    }
    const manager = await confirmedMember(t, oid, token, { role: 'custom', permissions: { manageUsers: true } });
    expectProblem(await t.request('GET', `${base}/events`, { token: manager.token }), 403, 'auth.permission_denied');
  });
});
