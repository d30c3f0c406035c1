/**
 * Tenant isolation of the SCIM endpoint (design.md, SCIM; style.md, Tests): a key works only on its
 * own organization's path, another organization's ids answer 404 and are never read or linked, key
 * rotation and disabling take effect at once, and concurrent requests of two organizations never
 * see each other's locations.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  expectCreated,
  expectListResponse,
  expectScim,
  expectScimError,
  groupMemberIds,
  guid,
  patchOp,
  PUBLIC_URL,
  scimClient,
  snapshot,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
  type ScimResponse,
} from '../support/scim.js';

describeEachDriver('SCIM tenant isolation', (driver) => {
  const s = useScimApp(driver);

  async function seeded(org: ScimOrg) {
    const user = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('iso'), externalId: guid() }), org, 'User');
    const group = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `Iso ${guid()}`, members: [{ value: user.id }] }), org, 'Group');
    return { userId: user.id as string, userName: user.userName as string, groupId: group.id as string, groupName: group.displayName as string };
  }

  /** Every organization id named in a `/scim/v2/<id>/` URL anywhere in a body or the Location header. */
  function locationOrgs(res: ScimResponse): string[] {
    const found: string[] = [];
    const scan = (value: unknown) => {
      if (typeof value === 'string') {
        for (const match of value.matchAll(/\/scim\/v2\/([^/]+)\//g)) found.push(match[1]!);
      } else if (Array.isArray(value)) value.forEach(scan);
      else if (value && typeof value === 'object') Object.values(value).forEach(scan);
    };
    scan(res.body);
    scan(res.headers.get('location') ?? '');
    return found;
  }

  it("answers 401 to one organization's key on another organization's path, and changes nothing there", async () => {
    const a = await s.organization();
    const b = await s.organization();
    const bData = await seeded(b);
    const before = await snapshot(s.t, b.oid);
    const aKeyOnB = scimClient(s.t, { ...b, token: a.token });
    const attempts = [
      aKeyOnB.get('/Users'),
      aKeyOnB.get(`/Users/${bData.userId}`),
      aKeyOnB.get(`/Groups/${bData.groupId}`),
      aKeyOnB.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }),
      aKeyOnB.patch(`/Users/${bData.userId}`, patchOp({ op: 'replace', path: 'active', value: false })),
      aKeyOnB.put(`/Groups/${bData.groupId}`, { schemas: [CORE_GROUP], displayName: 'Taken over', members: [] }),
      aKeyOnB.delete(`/Users/${bData.userId}`),
      aKeyOnB.get('/ServiceProviderConfig'),
    ];
    for (const res of await Promise.all(attempts)) expectScimError(res, 401);
    // An organization id that does not exist, or is not an id at all, is the same 401.
    expectScimError(await scimClient(s.t, { ...a, oid: guid() }).get('/Users'), 401);
    expectScimError(await scimClient(s.t, { ...a, oid: 'not-an-id' }).get('/Users'), 401);
    expect(await snapshot(s.t, b.oid)).toEqual(before);
  });

  it("answers 404 to another organization's user and group ids on one's own path, reading and changing nothing", async () => {
    const a = await s.organization();
    await seeded(a);
    const b = await s.organization();
    const bData = await seeded(b);
    const before = { a: await snapshot(s.t, a.oid), b: await snapshot(s.t, b.oid) };
    const attempts = [
      a.get(`/Users/${bData.userId}`),
      a.put(`/Users/${bData.userId}`, { schemas: [CORE_USER], userName: bData.userName }),
      a.patch(`/Users/${bData.userId}`, patchOp({ op: 'replace', path: 'active', value: false })),
      a.delete(`/Users/${bData.userId}`),
      a.get(`/Groups/${bData.groupId}`),
      a.put(`/Groups/${bData.groupId}`, { schemas: [CORE_GROUP], displayName: 'Taken over', members: [] }),
      a.patch(`/Groups/${bData.groupId}`, patchOp({ op: 'replace', path: 'displayName', value: 'Taken over' })),
      a.delete(`/Groups/${bData.groupId}`),
    ];
    for (const res of await Promise.all(attempts)) {
      expectScimError(res, 404);
      expect(JSON.stringify(res.body)).not.toContain(bData.userName);
      expect(JSON.stringify(res.body)).not.toContain(bData.groupName);
    }
    // Filters never reach across either.
    for (const filter of [`id eq "${bData.userId}"`, `userName eq "${bData.userName}"`]) {
      expect(expectListResponse(await a.get(`/Users?filter=${encodeURIComponent(filter)}`), { totalResults: 0 })).toEqual([]);
    }
    expect(expectListResponse(await a.get(`/Groups?filter=${encodeURIComponent(`displayName eq "${bData.groupName}"`)}`), { totalResults: 0 })).toEqual([]);
    expect(expectListResponse(await a.get(`/Groups?filter=${encodeURIComponent(`members.value eq "${bData.userId}"`)}`), { totalResults: 0 })).toEqual(
      [],
    );
    expect({ a: await snapshot(s.t, a.oid), b: await snapshot(s.t, b.oid) }).toEqual(before);
  });

  it("refuses another organization's member id in a group with 400, by POST, PATCH add, PATCH replace and PUT, and never links it", async () => {
    const a = await s.organization();
    const aData = await seeded(a);
    const b = await s.organization();
    const bData = await seeded(b);
    const before = { a: await snapshot(s.t, a.oid), b: await snapshot(s.t, b.oid) };

    const attempts = [
      a.post('/Groups', { schemas: [CORE_GROUP], displayName: `Smuggle ${guid()}`, members: [{ value: bData.userId }] }),
      a.patch(`/Groups/${aData.groupId}`, patchOp({ op: 'Add', path: 'members', value: [{ value: bData.userId }] })),
      a.patch(`/Groups/${aData.groupId}`, patchOp({ op: 'add', value: { members: [{ value: bData.userId }] } })),
      a.patch(`/Groups/${aData.groupId}`, patchOp({ op: 'replace', path: 'members', value: [{ value: aData.userId }, { value: bData.userId }] })),
      a.put(`/Groups/${aData.groupId}`, { schemas: [CORE_GROUP], displayName: aData.groupName, members: [{ value: aData.userId }, { value: bData.userId }] }),
    ];
    for (const res of attempts) {
      const answered = await res;
      expectScimError(answered, 400, 'invalidValue');
      expect(answered.body.detail).toContain(bData.userId);
    }
    expect({ a: await snapshot(s.t, a.oid), b: await snapshot(s.t, b.oid) }).toEqual(before);
    expect(expectScim(await a.get(`/Groups/${aData.groupId}`), 200).members.map((m: { value: string }) => m.value)).toEqual([aData.userId]);
    expect(await groupMemberIds(s.t, aData.groupId)).toEqual([aData.userId]);
    expect(expectScim(await b.get(`/Users/${bData.userId}`), 200).groups).toEqual([
      { value: bData.groupId, display: bData.groupName, $ref: `${b.baseUrl}/Groups/${bData.groupId}` },
    ]);
  });

  it('stops a rotated key at once and accepts the new one', async () => {
    const org = await s.organization();
    expectListResponse(await org.get('/Users'), { totalResults: 0 });
    const rotated = await s.t.request('POST', `/api/v1/organizations/${org.oid}/scim/rotate`, { token: org.adminToken });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toEqual({ baseUrl: `${PUBLIC_URL}/scim/v2/${org.oid}`, token: expect.any(String) });
    expect(rotated.body.token).not.toBe(org.token);
    expectScimError(await org.get('/Users'), 401);
    expectScimError(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 401);
    const fresh = scimClient(s.t, { ...org, token: rotated.body.token });
    expectListResponse(await fresh.get('/Users'), { totalResults: 0 });
    expectCreated(await fresh.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), fresh, 'User');
  });

  it('answers 401 once SCIM is disabled, and re-enabling issues a new key while the old one stays dead', async () => {
    const org = await s.organization();
    await seeded(org);
    const disabled = await s.t.request('DELETE', `/api/v1/organizations/${org.oid}/scim`, { token: org.adminToken });
    expect(disabled.status).toBe(204);
    const status = await s.t.request('GET', `/api/v1/organizations/${org.oid}/scim`, { token: org.adminToken });
    expect(status.body).toMatchObject({ enabled: false, baseUrl: `${PUBLIC_URL}/scim/v2/${org.oid}` });
    const before = await snapshot(s.t, org.oid);
    expectScimError(await org.get('/Users'), 401);
    expectScimError(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 401);
    expect(await snapshot(s.t, org.oid)).toEqual(before);

    const enabled = await s.t.request('POST', `/api/v1/organizations/${org.oid}/scim`, { token: org.adminToken });
    expect(enabled.status).toBe(200);
    expectScimError(await org.get('/Users'), 401);
    expectListResponse(await scimClient(s.t, { ...org, token: enabled.body.token }).get('/Users'), { totalResults: 1 });
  });

  // On PGlite each request runs to its end within one turn of the event loop, so only the
  // PostgreSQL run interleaves requests: that run is the one that catches a shared basepath.
  it("never shows one organization's location to another under 40 interleaved concurrent requests", async () => {
    const a = await s.organization();
    const b = await s.organization();
    const seeds = new Map([
      [a.oid, await seeded(a)],
      [b.oid, await seeded(b)],
    ]);
    const requests: { org: ScimOrg; response: Promise<ScimResponse> }[] = [];
    for (let i = 0; i < 40; i++) {
      const org = i % 2 === 0 ? a : b;
      const own = seeds.get(org.oid)!;
      const kind = Math.floor(i / 2) % 5;
      const response =
        kind === 0
          ? org.get('/Users')
          : kind === 1
            ? org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('race') })
            : kind === 2
              ? org.get(`/Users/${own.userId}`)
              : kind === 3
                ? org.post('/Groups', { schemas: [CORE_GROUP], displayName: `Race ${guid()}`, members: [{ value: own.userId }] })
                : org.get('/Groups');
      requests.push({ org, response });
    }
    let locations = 0;
    for (const { org, response } of requests) {
      const res = await response;
      expect(res.status).toBeLessThan(300);
      const orgs = locationOrgs(res);
      expect(orgs.length).toBeGreaterThan(0);
      expect(new Set(orgs)).toEqual(new Set([org.oid]));
      locations += orgs.length;
    }
    expect(locations).toBeGreaterThan(40);
  });
});
