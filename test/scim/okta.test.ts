/**
 * Okta's request sequences (docs/idp-behaviour.md, Okta) replayed end to end against the real app:
 * lookup, create with a password, GET-then-full-PUT profile updates, deactivation by PATCH and by
 * PUT, and group push (rename with the read-only id, filtered remove + add, full replace, delete).
 */
import { eq } from 'drizzle-orm';
import { expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  expectCreated,
  expectListResponse,
  expectScim,
  expectScimError,
  fixture,
  groupCount,
  groupMemberIds,
  guid,
  memberCount,
  memberRow,
  patchOp,
  restMember,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

const OKTA = { 'user-agent': 'Okta SCIM Client 1.0.0' };

describeEachDriver('SCIM with Okta', (driver) => {
  const s = useScimApp(driver);

  /** The org's client, sending Okta's User-Agent. */
  const okta = (org: ScimOrg) => ({
    get: (p: string) => org.request('GET', p, { headers: OKTA }),
    post: (p: string, body: unknown) => org.request('POST', p, { body, headers: OKTA }),
    put: (p: string, body: unknown) => org.request('PUT', p, { body, headers: OKTA }),
    patch: (p: string, body: unknown) => org.request('PATCH', p, { body, headers: OKTA }),
    delete: (p: string) => org.request('DELETE', p, { headers: OKTA }),
  });

  async function createUser(org: ScimOrg) {
    const userName = uniqueEmail('isaac');
    const externalId = `00u${guid().replace(/-/g, '').slice(0, 17)}`;
    const password = `Pw-${guid()}`;
    const body = expectCreated(await okta(org).post('/Users', fixture('okta', 'create-user', { userName, externalId, password })), org, 'User');
    return { id: body.id as string, userName, externalId, password, body };
  }

  /** The member row and every mail to it, as stored: a password must appear nowhere. */
  async function storedText(org: ScimOrg, id: string, email: string): Promise<string> {
    const row = await memberRow(s.t, org.oid, id);
    const mails = await s.t.testDb.database.db.select().from(schema.outbox).where(eq(schema.outbox.recipient, email));
    expect(row).toBeDefined();
    expect(mails.length).toBeGreaterThan(0);
    return JSON.stringify({ row, mails });
  }

  it('looks a user up with filter, startIndex=1 and count=100, getting an empty page with integer paging fields', async () => {
    const org = await s.organization();
    const res = await okta(org).get(`/Users?filter=${encodeURIComponent(`userName eq "${uniqueEmail()}"`)}&startIndex=1&count=100`);
    expect(expectListResponse(res, { totalResults: 0, startIndex: 1 })).toEqual([]);
  });

  it('creates a user with password, empty groups and locale: 201 with the full body, the password neither returned nor stored', async () => {
    const org = await s.organization();
    const now = s.t.clock.now.toISOString();
    const { id, userName, externalId, password, body } = await createUser(org);
    expect(body).toEqual({
      schemas: [CORE_USER],
      id,
      userName,
      name: { givenName: 'Isaac', familyName: 'Brock' },
      emails: [{ primary: true, value: userName, type: 'work' }],
      displayName: 'Isaac Brock',
      locale: 'en-US',
      externalId,
      active: true,
      meta: { resourceType: 'User', created: now, lastModified: now, location: `${org.baseUrl}/Users/${id}` },
    });
    expect(JSON.stringify(body)).not.toContain(password);
    expect(JSON.stringify(expectScim(await okta(org).get(`/Users/${id}`), 200))).not.toContain(password);
    const row = await memberRow(s.t, org.oid, id);
    expect(row?.profile).not.toHaveProperty('password');
    expect(await storedText(org, id, userName)).not.toContain(password);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ email: userName, externalId, name: 'Isaac Brock', status: 'invited', role: 'user' });
  });

  it('answers a repeated create with 409 uniqueness and creates nothing', async () => {
    const org = await s.organization();
    const { userName, externalId, password } = await createUser(org);
    const again = await okta(org).post('/Users', fixture('okta', 'create-user', { userName, externalId, password }));
    expectScimError(again, 409, 'uniqueness');
    expect(await memberCount(s.t, org.oid)).toBe(1);
  });

  it('replaces a profile with the GET-then-full-PUT (id, meta, groups, password): omitted attributes are cleared, groups and password ignored', async () => {
    const org = await s.organization();
    const { id, userName, externalId, password } = await createUser(org);
    const group = expectCreated(await okta(org).post('/Groups', fixture('okta', 'create-group', { displayName: `Eng ${guid()}` })), org, 'Group');
    expect((await okta(org).patch(`/Groups/${group.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: id }] }))).status).toBe(204);

    const current = expectScim(await okta(org).get(`/Users/${id}`), 200);
    expect(current.groups).toEqual([{ value: group.id, display: group.displayName, $ref: `${org.baseUrl}/Groups/${group.id}` }]);
    s.t.clock.advance(60_000);
    const newPassword = `Pw-${guid()}`;
    const put = fixture('okta', 'replace-user', { id, userName, externalId, password: newPassword, meta: current.meta });
    const replaced = expectScim(await okta(org).put(`/Users/${id}`, put), 200);
    expect(replaced).toEqual({
      schemas: [CORE_USER],
      id,
      userName,
      name: { givenName: 'Isaac', familyName: 'Brock-Modest' },
      emails: [{ primary: true, value: userName, type: 'work' }],
      externalId,
      active: true,
      // `groups: []` in the PUT is read-only input: the membership stays.
      groups: current.groups,
      meta: { ...current.meta, lastModified: s.t.clock.now.toISOString() },
    });
    expect(expectScim(await okta(org).get(`/Users/${id}`), 200)).toEqual(replaced);
    expect(await groupMemberIds(s.t, group.id)).toEqual([id]);
    const row = await memberRow(s.t, org.oid, id);
    expect(row?.profile).not.toHaveProperty('locale');
    expect(row?.profile).not.toHaveProperty('displayName');
    expect(row?.profile).not.toHaveProperty('password');
    const stored = await storedText(org, id, userName);
    expect(stored).not.toContain(password);
    expect(stored).not.toContain(newPassword);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ name: 'Isaac Brock-Modest', externalId, status: 'invited' });
  });

  it('deactivates with a no-path replace of active:false (revoked, still readable and filterable) and reactivates to the previous status', async () => {
    const org = await s.organization();
    const { id, userName } = await createUser(org);
    const off = expectScim(await okta(org).patch(`/Users/${id}`, fixture('okta', 'deactivate-user')), 200);
    expect(off).toMatchObject({ id, userName, active: false, name: { givenName: 'Isaac', familyName: 'Brock' } });
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'revoked', previousStatus: 'invited' });
    expect(expectScim(await okta(org).get(`/Users/${id}`), 200).active).toBe(false);
    const found = expectListResponse(await okta(org).get(`/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}&startIndex=1&count=100`), {
      totalResults: 1,
    });
    expect(found).toMatchObject([{ id, active: false }]);

    const on = expectScim(await okta(org).patch(`/Users/${id}`, fixture('okta', 'reactivate-user')), 200);
    expect(on.active).toBe(true);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'invited', previousStatus: null });
  });

  it('deactivates a custom-app user sent as a PUT with active:false', async () => {
    const org = await s.organization();
    const { id, userName, externalId, password } = await createUser(org);
    const current = expectScim(await okta(org).get(`/Users/${id}`), 200);
    const put = { ...fixture('okta', 'replace-user', { id, userName, externalId, password, meta: current.meta }), active: false };
    expect(expectScim(await okta(org).put(`/Users/${id}`, put), 200).active).toBe(false);
    expect((await restMember(s.t, org, id)).body.status).toBe('revoked');
  });

  it('pushes a group with members:[] and renames it with a no-path replace carrying the read-only id', async () => {
    const org = await s.organization();
    const displayName = `Okta Group ${guid()}`;
    const created = expectCreated(await okta(org).post('/Groups', fixture('okta', 'create-group', { displayName })), org, 'Group');
    expect(created).toEqual({ schemas: [CORE_GROUP], id: created.id, displayName, members: [], meta: created.meta });

    const newName = `Okta Renamed ${guid()}`;
    const renamed = await okta(org).patch(`/Groups/${created.id}`, fixture('okta', 'rename-group', { id: created.id, displayName: newName }));
    expect(renamed.status).toBe(204);
    expect(expectScim(await okta(org).get(`/Groups/${created.id}`), 200)).toMatchObject({ id: created.id, displayName: newName, members: [] });
    // An id in the value that is not the group's own is read-only input too: ignored, never applied.
    const other = await okta(org).patch(`/Groups/${created.id}`, fixture('okta', 'rename-group', { id: guid(), displayName: displayName }));
    expect(other.status).toBe(204);
    expect(expectScim(await okta(org).get(`/Groups/${created.id}`), 200)).toMatchObject({ id: created.id, displayName });
    expect(await groupCount(s.t, org.oid)).toBe(1);
  });

  it('changes membership by filtered remove plus add in one PATCH, and by a full replace of members', async () => {
    const org = await s.organization();
    const [a, b, c, d, e] = [await createUser(org), await createUser(org), await createUser(org), await createUser(org), await createUser(org)];
    const group = expectCreated(await okta(org).post('/Groups', fixture('okta', 'create-group', { displayName: `Ops ${guid()}` })), org, 'Group');
    const gid = group.id as string;
    await okta(org).patch(`/Groups/${gid}`, patchOp({ op: 'add', path: 'members', value: [a, b, c].map((u) => ({ value: u.id })) }));
    expect(await groupMemberIds(s.t, gid)).toEqual([a.id, b.id, c.id].sort());

    const moved = await okta(org).patch(`/Groups/${gid}`, fixture('okta', 'update-members', { removeId: b.id, addId: d.id, addDisplay: d.userName }));
    expect(moved.status).toBe(204);
    const afterMove = expectScim(await okta(org).get(`/Groups/${gid}`), 200);
    expect((afterMove.members as { value: string }[]).map((m) => m.value).sort()).toEqual([a.id, c.id, d.id].sort());

    const replaced = await okta(org).patch(`/Groups/${gid}`, fixture('okta', 'replace-members', { members: [{ value: d.id }, { value: e.id }] }));
    expect(replaced.status).toBe(204);
    const afterReplace = expectScim(await okta(org).get(`/Groups/${gid}`), 200);
    // Members come in the stable member order: creation time, then id (these share one instant).
    expect(afterReplace.members).toEqual(
      [d, e]
        .sort((x, y) => (x.id < y.id ? -1 : 1))
        .map((u) => ({ value: u.id, display: u.userName, $ref: `${org.baseUrl}/Users/${u.id}`, type: 'User' })),
    );
    expect(await groupMemberIds(s.t, gid)).toEqual([d.id, e.id].sort());
  });

  it('deletes a pushed group on unlink with 204, then 404, leaving its users', async () => {
    const org = await s.organization();
    const user = await createUser(org);
    const group = expectCreated(await okta(org).post('/Groups', fixture('okta', 'create-group', { displayName: `Gone ${guid()}` })), org, 'Group');
    await okta(org).patch(`/Groups/${group.id}`, fixture('okta', 'replace-members', { members: [{ value: user.id }] }));
    expect((await okta(org).delete(`/Groups/${group.id}`)).status).toBe(204);
    expectScimError(await okta(org).get(`/Groups/${group.id}`), 404);
    expect(await groupCount(s.t, org.oid)).toBe(0);
    expect(expectScim(await okta(org).get(`/Users/${user.id}`), 200)).toMatchObject({ id: user.id, active: true });
  });
});
