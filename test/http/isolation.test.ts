/**
 * Tenant isolation through the API: another provider's or organization's ids look exactly like
 * missing ones (404, never data), and a request that names them changes nothing anywhere.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apiRoutes } from '../../src/http/api.routes.js';
import type { Route } from '../../src/http/route.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  confirmedMember,
  createClient,
  expectProblem,
  fillPath,
  must,
  routeKey,
  SAMPLE_BODIES,
  serviceUser,
  setupProvider,
  tableCounts,
  uniqueEmail,
  type SeededMember,
  type SeededProvider,
  type SeededProviderUser,
} from '../support/http-seed.js';

interface Tenant {
  provider: SeededProvider;
  staff: SeededProviderUser;
  /** An invited provider user (a target for provider-user routes). */
  invitedStaffId: string;
  oid: string;
  orgName: string;
  /** A confirmed admin member of the organization. */
  memberAdmin: SeededMember;
  /** A confirmed member with the user role (a target for member routes). */
  target: SeededMember;
  gid: string;
  cid: string;
}

const providerRoutes = apiRoutes.filter((r) => r.path.startsWith('/providers/:pid') && !/\/(enable|disable)$/.test(r.path));
const organizationRoutes = apiRoutes.filter((r) => r.path.startsWith('/organizations/:oid'));
const nestedOrganizationRoutes = organizationRoutes.filter((r) => /:(mid|gid|cid)/.test(r.path));

describeEachDriver('tenant isolation', (driver) => {
  let t: TestApp;
  let a: Tenant;
  let b: Tenant;

  async function tenant(label: string): Promise<Tenant> {
    const provider = await setupProvider(t, { name: `Provider ${label}` });
    const staff = await serviceUser(t, provider);
    const invitedStaff = must(
      await t.request('POST', `/api/v1/providers/${provider.pid}/users`, {
        token: provider.adminToken,
        body: { emails: [uniqueEmail(`staff-${label}`)], type: 'serviceUser' },
      }),
      201,
      'invite staff',
    );
    const orgName = `Client of ${label}`;
    const org = await createClient(t, provider, { name: orgName, plan: 'enterprise', seats: 50 });
    const memberAdmin = await confirmedMember(t, org.id, provider.adminToken, { role: 'admin' });
    const target = await confirmedMember(t, org.id, provider.adminToken, { role: 'user' });
    const base = `/api/v1/organizations/${org.id}`;
    const group = must(
      await t.request('POST', `${base}/groups`, { token: provider.adminToken, body: { name: `Group ${label}`, members: [target.memberId] } }),
      201,
      'group',
    );
    const collection = must(
      await t.request('POST', `${base}/collections`, { token: provider.adminToken, body: { name: `Collection ${label}` } }),
      201,
      'collection',
    );
    // Each provider user's hourly access event is recorded now, so snapshots below stay still.
    must(await t.request('GET', base, { token: staff.token }), 200, 'staff access');
    return {
      provider,
      staff,
      invitedStaffId: invitedStaff.invited[0].id,
      oid: org.id,
      orgName,
      memberAdmin,
      target,
      gid: group.id,
      cid: collection.id,
    };
  }

  beforeAll(async () => {
    t = await startTestApp(driver);
    a = await tenant('A');
    b = await tenant('B');
  });
  afterAll(() => t.close());

  const idsOf = (x: Tenant) => ({
    pid: x.provider.pid,
    uid: x.invitedStaffId,
    oid: x.oid,
    mid: x.target.memberId,
    gid: x.gid,
    cid: x.cid,
    type: 'singleOrg',
  });

  /** What tenant `x` looks like to its own admin: must be identical before and after a foreign request. */
  async function snapshot(x: Tenant) {
    const read = async (path: string) => must(await t.request('GET', path, { token: SYSTEM_TOKEN }), 200, `read ${path}`);
    const base = `/api/v1/organizations/${x.oid}`;
    return {
      provider: await read(`/api/v1/providers/${x.provider.pid}`),
      users: await read(`/api/v1/providers/${x.provider.pid}/users`),
      clients: await read(`/api/v1/providers/${x.provider.pid}/clients`),
      members: await read(`${base}/members`),
      target: await read(`${base}/members/${x.target.memberId}`),
      group: await read(`${base}/groups/${x.gid}`),
      collections: await read(`${base}/collections`),
      policies: await read(`${base}/policies`),
      counts: await tableCounts(t),
    };
  }

  const send = (r: Route, path: string, token: string) =>
    t.request(r.method.toUpperCase(), path, { token, ...(r.body ? { body: SAMPLE_BODIES[routeKey(r)] } : {}) });

  /** A 404 problem that carries nothing of tenant `x`. */
  function expectNothingOf(res: Awaited<ReturnType<TestApp['request']>>, x: Tenant) {
    expectProblem(res, 404);
    expect(res.body.code).toMatch(/\.not_found$/);
    const text = JSON.stringify(res.body);
    for (const secret of [x.provider.name, x.provider.adminEmail, x.orgName, x.target.email, x.memberAdmin.email]) {
      expect(text).not.toContain(secret);
    }
  }

  it("provider A's admin and service user get 404 on every provider route of B, and B is unchanged", async () => {
    const before = await snapshot(b);
    for (const token of [a.provider.adminToken, a.staff.token]) {
      for (const r of providerRoutes) {
        expectNothingOf(await send(r, fillPath(r.path, idsOf(b)), token), b);
      }
    }
    expect(await snapshot(b)).toEqual(before);
  });

  it("provider A's staff naming B's provider users or clients under A's own path get 404, and B is unchanged", async () => {
    const before = await snapshot(b);
    const mixed = { ...idsOf(a), uid: b.invitedStaffId, oid: b.oid };
    for (const token of [a.provider.adminToken, a.staff.token]) {
      for (const r of providerRoutes.filter((route) => /:(uid|oid)/.test(route.path))) {
        const res = await send(r, fillPath(r.path, mixed), token);
        // A service user is refused admin-only routes before any lookup: 403, which says nothing of B.
        const adminOnly = r.path.includes('/users') || (r.method === 'delete' && r.path.includes('/clients'));
        if (token === a.staff.token && adminOnly) expectProblem(res, 403, 'auth.permission_denied');
        else expectNothingOf(res, b);
      }
    }
    expect(await snapshot(b)).toEqual(before);
  });

  it("provider A's admin and service user get 404 on every route of B's client organization, and it is unchanged", async () => {
    const before = await snapshot(b);
    for (const token of [a.provider.adminToken, a.staff.token]) {
      for (const r of organizationRoutes) {
        expectNothingOf(await send(r, fillPath(r.path, idsOf(b)), token), b);
      }
    }
    expect(await snapshot(b)).toEqual(before);
  });

  it("a confirmed admin member of organization A gets 404 on every route of organization B, and B is unchanged", async () => {
    const before = await snapshot(b);
    for (const r of organizationRoutes) {
      expectNothingOf(await send(r, fillPath(r.path, idsOf(b)), a.memberAdmin.token), b);
    }
    expect(await snapshot(b)).toEqual(before);
  });

  it("organization B's member, group and collection ids under organization A's path answer 404, and B's rows are unchanged", async () => {
    const before = await snapshot(b);
    const mixed = { ...idsOf(a), mid: b.target.memberId, gid: b.gid, cid: b.cid };
    for (const token of [a.provider.adminToken, a.staff.token, a.memberAdmin.token]) {
      for (const r of nestedOrganizationRoutes) {
        expectNothingOf(await send(r, fillPath(r.path, mixed), token), b);
      }
      // The state changes, one by one, with the bodies they need.
      const base = `/api/v1/organizations/${a.oid}/members/${b.target.memberId}`;
      expectNothingOf(await t.request('PATCH', base, { token, body: { role: 'admin', groups: [], collections: [] } }), b);
      for (const verb of ['confirm', 'revoke', 'restore', 'reinvite']) {
        expectNothingOf(await t.request('POST', `${base}/${verb}`, { token }), b);
      }
    }
    expect(await snapshot(b)).toEqual(before);
    expect(before.target).toMatchObject({ status: 'confirmed', role: 'user', groups: [b.gid] });
  });

  it("organization A's groups and members refuse B's member, group and collection ids with 400, and nothing is linked", async () => {
    const beforeA = await snapshot(a);
    const beforeB = await snapshot(b);
    const base = `/api/v1/organizations/${a.oid}`;
    const token = a.provider.adminToken;
    const attempts = [
      await t.request('POST', `${base}/groups`, { token, body: { name: 'Mixed', members: [a.target.memberId, b.target.memberId] } }),
      await t.request('PATCH', `${base}/groups/${a.gid}`, { token, body: { members: [a.target.memberId, b.target.memberId] } }),
      await t.request('PATCH', `${base}/groups/${a.gid}`, { token, body: { collections: [{ id: b.cid, manage: true }] } }),
      await t.request('POST', `${base}/groups`, { token, body: { name: 'Mixed', collections: [{ id: b.cid }] } }),
      await t.request('POST', `${base}/members`, { token, body: { emails: [uniqueEmail()], role: 'user', groups: [b.gid] } }),
      await t.request('POST', `${base}/members`, { token, body: { emails: [uniqueEmail()], role: 'user', collections: [{ id: b.cid }] } }),
      await t.request('PATCH', `${base}/members/${a.target.memberId}`, { token, body: { groups: [a.gid, b.gid] } }),
      await t.request('PATCH', `${base}/members/${a.target.memberId}`, { token, body: { collections: [{ id: b.cid }] } }),
    ];
    for (const res of attempts) {
      expectProblem(res, 400, 'input.invalid');
      expect(JSON.stringify(res.body.errors)).toMatch(new RegExp(`${b.target.memberId}|${b.gid}|${b.cid}`));
    }
    expect(await snapshot(a)).toEqual(beforeA);
    expect(await snapshot(b)).toEqual(beforeB);
    expect(beforeA.group.members).toEqual([a.target.memberId]);
    expect(beforeA.target).toMatchObject({ groups: [a.gid], collections: [] });
  });

  it('/me of a member of organization A lists organization A and nothing of B', async () => {
    const me = must(await t.request('GET', '/api/v1/me', { token: a.memberAdmin.token }), 200, 'me');
    expect(me.organizations.map((o: { organizationId: string }) => o.organizationId)).toEqual([a.oid]);
    expect(me.providers).toEqual([]);
  });
});
