/**
 * Review findings, each pinned by a test: no tenant id in metrics, a huge startIndex is just past
 * the end, a PATCH that fails part-way changes nothing, and concurrent user PATCHes keep every change.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { CORE_GROUP, CORE_USER, expectListResponse, expectScim, expectScimError, patchOp, uniqueEmail, useScimApp } from '../support/scim.js';

describeEachDriver('SCIM hardening', (driver) => {
  const s = useScimApp(driver);

  it('labels metrics with the route pattern, never an organization id', async () => {
    const org = await s.organization();
    expectScim(await org.get('/Users?count=1'), 200);
    const metrics = await s.t.request('GET', '/metrics');
    expect(metrics.body).toContain('route="/scim/v2/:organizationId/Users"');
    expect(metrics.body).not.toContain(org.oid);
  });

  it('answers a startIndex beyond any integer column with an empty page, not an error', async () => {
    const org = await s.organization();
    expectScim(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201);
    const resources = expectListResponse(await org.get('/Users?startIndex=99999999999999999999&count=10'), {
      totalResults: 1,
      startIndex: 2 ** 31,
      itemsPerPage: 0,
    });
    expect(resources).toEqual([]);
  });

  it('applies a group PATCH wholly or not at all: a rename beside a foreign member is not kept', async () => {
    const a = await s.organization();
    const b = await s.organization();
    const foreign = expectScim(await b.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201);
    const group = expectScim(await a.post('/Groups', { schemas: [CORE_GROUP], displayName: 'Before' }), 201);
    expectScimError(
      await a.patch(
        `/Groups/${group.id}`,
        patchOp({ op: 'replace', path: 'displayName', value: 'After' }, { op: 'add', path: 'members', value: [{ value: foreign.id }] }),
      ),
      400,
      'invalidValue',
    );
    expect(expectScim(await a.get(`/Groups/${group.id}`), 200)).toMatchObject({ displayName: 'Before', members: [] });
  });

  it('applies a user PATCH wholly or not at all: a name change beside a restore into a full organization is not kept', async () => {
    const org = await s.organization({ seats: 1 });
    const first = expectScim(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail(), displayName: 'First' }), 201);
    expectScim(await org.patch(`/Users/${first.id}`, patchOp({ op: 'replace', path: 'active', value: false })), 200);
    expectScim(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201); // takes the seat
    expectScimError(
      await org.patch(
        `/Users/${first.id}`,
        patchOp({ op: 'replace', path: 'displayName', value: 'Renamed' }, { op: 'replace', path: 'active', value: true }),
      ),
      403,
    );
    expect(expectScim(await org.get(`/Users/${first.id}`), 200)).toMatchObject({ displayName: 'First', active: false });
  });

  it('keeps every attribute of concurrent PATCHes to one user', async () => {
    const org = await s.organization();
    const user = expectScim(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201);
    const attributes = ['title', 'nickName', 'locale', 'timezone', 'userType', 'preferredLanguage', 'displayName'];
    const results = await Promise.all(
      attributes.map((path) => org.patch(`/Users/${user.id}`, patchOp({ op: 'add', path, value: `v-${path}` }))),
    );
    for (const res of results) expect(res.body, JSON.stringify(res.body)).toMatchObject({ id: user.id });
    const after = expectScim(await org.get(`/Users/${user.id}`), 200);
    for (const path of attributes) expect(after[path], path).toBe(`v-${path}`);
  });
});
