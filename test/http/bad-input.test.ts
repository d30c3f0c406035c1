/**
 * Bad input is answered 4xx with problem+json and changes nothing: state and the event count
 * are read back after each refusal. The app runs with a small body limit (2kb).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apiRoutes } from '../../src/http/api.routes.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  createClient,
  expectProblem,
  fillPath,
  invitedMember,
  must,
  providerUser,
  routeKey,
  setupProvider,
  tableCounts,
  uniqueEmail,
  type SeededProvider,
} from '../support/http-seed.js';

const DAY = 86_400_000;
const pathsOf = (res: { body: { errors?: { path: string }[] } }) => (res.body.errors ?? []).map((e) => e.path).sort();

describeEachDriver('bad input', (driver) => {
  let t: TestApp;
  let p: SeededProvider;
  let oid: string;
  let ids: Record<string, string>;

  beforeAll(async () => {
    t = await startTestApp(driver, { bodyLimit: '2kb' });
    p = await setupProvider(t);
    oid = (await createClient(t, p, { seats: 100 })).id;
    const staff = await providerUser(t, p, { until: 'accepted' });
    const member = await invitedMember(t, oid, p.adminToken);
    const base = `/api/v1/organizations/${oid}`;
    const group = must(await t.request('POST', `${base}/groups`, { token: p.adminToken, body: { name: 'G' } }), 201, 'group');
    const collection = must(await t.request('POST', `${base}/collections`, { token: p.adminToken, body: { name: 'C' } }), 201, 'c');
    ids = { pid: p.pid, uid: staff.providerUserId, oid, mid: member.memberId, gid: group.id, cid: collection.id, type: 'singleOrg' };
  });
  afterAll(() => t.close());

  const members = () => `/api/v1/organizations/${oid}/members`;

  it('a body that is not valid JSON is answered 400 request.malformed_json and nothing changes', async () => {
    const before = await tableCounts(t);
    for (const raw of ['{"emails": [', "{'emails': []}", '{"emails":["a@b.test"],"role":"user"} trailing', 'null', '"user"']) {
      const res = await t.request('POST', members(), { token: p.adminToken, raw });
      expectProblem(res, 400, 'request.malformed_json');
    }
    expectProblem(
      await t.request('PATCH', `${members()}/${ids.mid}`, { token: p.adminToken, raw: '{"role": admin}' }),
      400,
      'request.malformed_json',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  it('wrong types are answered 400 listing every bad path, and nothing changes', async () => {
    const before = await tableCounts(t);
    const invite = await t.request('POST', members(), {
      token: p.adminToken,
      body: { emails: 'someone@example.test', role: 5, permissions: { manageUsers: 'yes' }, groups: 'all' },
    });
    expectProblem(invite, 400, 'request.invalid');
    expect(pathsOf(invite)).toEqual(['body.emails', 'body.groups', 'body.permissions.manageUsers', 'body.role']);

    const client = await t.request('POST', `/api/v1/providers/${p.pid}/clients`, {
      token: p.adminToken,
      body: { name: '', plan: 'gold', seats: -1, ownerEmail: 'not-an-email' },
    });
    expectProblem(client, 400, 'request.invalid');
    expect(pathsOf(client)).toEqual(['body.name', 'body.ownerEmail', 'body.plan', 'body.seats']);

    const array = await t.request('POST', members(), { token: p.adminToken, body: [{ emails: [uniqueEmail()], role: 'user' }] });
    expectProblem(array, 400, 'request.invalid');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('unknown fields are answered 400 naming each one, nested ones included, and nothing changes', async () => {
    const before = await tableCounts(t);
    const client = await t.request('POST', `/api/v1/providers/${p.pid}/clients`, {
      token: p.adminToken,
      body: { name: 'X', plan: 'teams', seats: 1, color: 'red', billingEmail: 'b@example.test' },
    });
    expectProblem(client, 400, 'request.invalid');
    expect(pathsOf(client)).toEqual(['body.billingEmail', 'body.color']);

    const invite = await t.request('POST', members(), {
      token: p.adminToken,
      body: {
        emails: [uniqueEmail()],
        role: 'custom',
        permissions: { fly: true, manageUsers: true },
        collections: [{ id: ids.cid, bogus: 1 }],
        extra: 1,
      },
    });
    expectProblem(invite, 400, 'request.invalid');
    expect(pathsOf(invite)).toEqual(['body.collections.0.bogus', 'body.extra', 'body.permissions.fly']);
    expect(await tableCounts(t)).toEqual(before);
  });

  it('invitation batches of more than 20 emails or with a malformed email are refused with 400, inviting nobody', async () => {
    const before = await tableCounts(t);
    const many = Array.from({ length: 21 }, () => uniqueEmail('batch'));
    expectProblem(await t.request('POST', members(), { token: p.adminToken, body: { emails: many, role: 'user' } }), 400, 'request.invalid');
    const bad = await t.request('POST', members(), { token: p.adminToken, body: { emails: [uniqueEmail(), 'nope', '@x'], role: 'user' } });
    expectProblem(bad, 400, 'request.invalid');
    expect(pathsOf(bad)).toEqual(['body.emails.1', 'body.emails.2']);
    expectProblem(
      await t.request('POST', `/api/v1/providers/${p.pid}/users`, { token: p.adminToken, body: { emails: many, type: 'admin' } }),
      400,
      'request.invalid',
    );
    expectProblem(
      await t.request('POST', `/api/v1/providers/${p.pid}/users`, { token: p.adminToken, body: { emails: [], type: 'admin' } }),
      400,
      'request.invalid',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  it('a body over the limit is answered 413 request.too_large and nothing changes', async () => {
    const before = await tableCounts(t);
    const big = { name: 'x'.repeat(4_000), plan: 'teams', seats: 1 };
    expectProblem(await t.request('POST', `/api/v1/providers/${p.pid}/clients`, { token: p.adminToken, body: big }), 413, 'request.too_large');
    expectProblem(
      await t.request('POST', members(), { token: p.adminToken, body: { emails: Array.from({ length: 20 }, () => `${'y'.repeat(150)}@example.test`), role: 'user' } }),
      413,
      'request.too_large',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  it('a body that is not JSON is answered 415 request.unsupported_media_type and nothing changes', async () => {
    const before = await tableCounts(t);
    const cases: [string, string][] = [
      ['text/plain', JSON.stringify({ emails: [uniqueEmail()], role: 'user' })],
      ['application/x-www-form-urlencoded', 'emails=a%40b.test&role=user'],
      ['application/xml', '<invite/>'],
    ];
    for (const [type, raw] of cases) {
      const res = await t.request('POST', members(), { token: p.adminToken, raw, headers: { 'content-type': type } });
      expectProblem(res, 415, 'request.unsupported_media_type');
    }
    const charset = await t.request('POST', members(), {
      token: p.adminToken,
      raw: JSON.stringify({ emails: [uniqueEmail()], role: 'user' }),
      headers: { 'content-type': 'application/json; charset=klingon' },
    });
    expectProblem(charset, 415, 'request.unsupported_media_type');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('every PATCH route refuses an empty body, or none at all, with 400 and changes nothing', async () => {
    const patches = apiRoutes.filter((r) => r.method === 'patch');
    expect(patches.map(routeKey)).toContain('PATCH /providers/:pid');
    const before = await tableCounts(t);
    for (const r of patches) {
      const path = fillPath(r.path, ids);
      expectProblem(await t.request('PATCH', path, { token: p.adminToken, body: {} }), 400, 'request.invalid');
      expectProblem(await t.request('PATCH', path, { token: p.adminToken }), 400, 'request.invalid');
    }
    expect(await tableCounts(t)).toEqual(before);
  });

  it('event queries with a start or end that is not a date, a range over 367 days or start after end are refused with 400', async () => {
    for (const base of [`/api/v1/providers/${p.pid}/events`, `/api/v1/organizations/${oid}/events`]) {
      for (const query of ['start=yesterday', 'start=2026-02-30', 'end=2026-13-01', 'start=2026-01-01T25:00:00Z', 'start=1700000000']) {
        const res = await t.request('GET', `${base}?${query}`, { token: p.adminToken });
        expectProblem(res, 400, 'request.invalid');
        expect(pathsOf(res)).toEqual([`query.${query.split('=')[0]}`]);
      }
      const end = t.clock.now;
      const tooLong = new Date(end.getTime() - 368 * DAY).toISOString();
      expectProblem(
        await t.request('GET', `${base}?start=${tooLong}&end=${end.toISOString()}`, { token: p.adminToken }),
        400,
        'input.invalid',
      );
      const longest = new Date(end.getTime() - 367 * DAY).toISOString();
      expect((await t.request('GET', `${base}?start=${longest}&end=${end.toISOString()}`, { token: p.adminToken })).status).toBe(200);
      expectProblem(await t.request('GET', `${base}?start=2026-02-01&end=2026-01-01`, { token: p.adminToken }), 400, 'input.invalid');
    }
  });

  it('event queries with a bad continuationToken, an unknown or a repeated parameter are refused with 400', async () => {
    for (const base of [`/api/v1/providers/${p.pid}/events`, `/api/v1/organizations/${oid}/events`]) {
      const forged = [
        'garbage!',
        Buffer.from('not json').toString('base64url'),
        Buffer.from(JSON.stringify(['2026-01-01T00:00:00Z', 'seven'])).toString('base64url'),
        Buffer.from(JSON.stringify({ date: 1 })).toString('base64url'),
      ];
      for (const token of forged) {
        expectProblem(await t.request('GET', `${base}?continuationToken=${encodeURIComponent(token)}`, { token: p.adminToken }), 400, 'input.invalid');
      }
      const unknown = await t.request('GET', `${base}?start=2026-02-01&limit=500&sort=asc`, { token: p.adminToken });
      expectProblem(unknown, 400, 'request.invalid');
      expect(pathsOf(unknown)).toEqual(['query.limit', 'query.sort']);
      expectProblem(await t.request('GET', `${base}?start=2026-02-01&start=2026-02-02`, { token: p.adminToken }), 400, 'request.invalid');
    }
  });

  it('a route that takes no query parameters refuses any with 400 naming them, and does nothing', async () => {
    const before = await tableCounts(t);
    const res = await t.request('GET', `/api/v1/providers/${p.pid}?expand=users&x=1`, { token: p.adminToken });
    expectProblem(res, 400, 'request.invalid');
    expect(pathsOf(res)).toEqual(['query.expand', 'query.x']);
    expectProblem(
      await t.request('POST', `/api/v1/organizations/${oid}/groups?dryRun=true`, { token: p.adminToken, body: { name: 'Should not exist' } }),
      400,
      'request.invalid',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  it('a policy body with a non-boolean enabled is refused with 400 and stores nothing', async () => {
    const before = await tableCounts(t);
    const res = await t.request('PUT', `/api/v1/organizations/${oid}/policies/singleOrg`, { token: p.adminToken, body: { enabled: 'yes' } });
    expectProblem(res, 400, 'request.invalid');
    expect(pathsOf(res)).toEqual(['body.enabled']);
    expect(await tableCounts(t)).toEqual(before);
  });

  it('the operator token is no help against bad input: the same refusals apply', async () => {
    const before = await tableCounts(t);
    expectProblem(await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'X' } }), 400, 'request.invalid');
    expectProblem(await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, raw: '{' }), 400, 'request.malformed_json');
    expect(await tableCounts(t)).toEqual(before);
  });
});
