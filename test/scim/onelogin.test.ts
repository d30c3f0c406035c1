/**
 * OneLogin's request sequences (docs/idp-behaviour.md, OneLogin) replayed end to end against the
 * real app: bodies from an admin-edited template (legacy URNs, string booleans, `"id": null`,
 * `emails` as an object), `+`-encoded filters with a trailing `&`, `PUT /Users/{id}?` updates and
 * group membership by PATCH.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_USER,
  ENTERPRISE_USER,
  expectCreated,
  expectListResponse,
  expectScim,
  fixture,
  groupMemberIds,
  guid,
  memberRow,
  restMember,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

describeEachDriver('SCIM with OneLogin', (driver) => {
  const s = useScimApp(driver);

  async function createUser(org: ScimOrg) {
    const userName = uniqueEmail('grady');
    const externalId = String(Math.floor(Math.random() * 1e9));
    const body = expectCreated(await org.post('/Users', fixture('onelogin', 'create-user', { userName, externalId })), org, 'User');
    return { id: body.id as string, userName, externalId, body };
  }

  /** OneLogin's filter style: `+` for spaces and a trailing `&`. */
  const oneLoginFilter = (attribute: string, value: string) => `filter=${attribute}+eq+%22${encodeURIComponent(value)}%22&`;

  it('answers a +-encoded filter with a trailing & before and after the user exists', async () => {
    const org = await s.organization();
    const userName = uniqueEmail('grady');
    expect(expectListResponse(await org.get(`/Users?${oneLoginFilter('userName', userName)}`), { totalResults: 0 })).toEqual([]);
    const created = expectCreated(
      await org.post('/Users', fixture('onelogin', 'create-user', { userName, externalId: '42' })),
      org,
      'User',
    );
    const found = expectListResponse(await org.get(`/Users?${oneLoginFilter('userName', userName)}`), { totalResults: 1 });
    expect(found.map((u) => u.id)).toEqual([created.id]);
  });

  it('creates a user from the legacy template: legacy URNs, "active":"true", "id": null and emails as an object', async () => {
    const org = await s.organization();
    const { id, userName, externalId, body } = await createUser(org);
    expect(body).toEqual({
      schemas: [CORE_USER, ENTERPRISE_USER],
      id,
      userName,
      externalId,
      active: true,
      name: { givenName: 'Grady', familyName: 'Archie' },
      emails: [{ value: userName, type: 'work', primary: true }],
      title: 'Designer',
      // costCenter was null (unassigned): dropped, not stored as null.
      [ENTERPRISE_USER]: { department: 'Design' },
      meta: body.meta,
    });
    expect(expectScim(await org.get(`/Users/${id}`), 200)).toEqual(body);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ email: userName, externalId, name: 'Grady Archie', status: 'invited' });
    const row = await memberRow(s.t, org.oid, id);
    expect(Object.keys(row?.profile ?? {}).filter((k) => k.startsWith('urn:scim:'))).toEqual([]);
  });

  it('replaces a user by PUT /Users/{id}? with the legacy template, clearing what the template omits', async () => {
    const org = await s.organization();
    const { id, userName, externalId, body: created } = await createUser(org);
    const put = await org.put(`/Users/${id}?`, fixture('onelogin', 'replace-user', { userName, externalId, active: 'true' }));
    const replaced = expectScim(put, 200);
    expect(replaced).toEqual({
      schemas: [CORE_USER, ENTERPRISE_USER],
      id,
      userName,
      externalId,
      active: true,
      name: { givenName: 'Grady', familyName: 'Archie-Lee' },
      emails: [{ value: userName, type: 'work', primary: true }],
      [ENTERPRISE_USER]: { department: 'Product' },
      meta: created.meta,
    });
    expect(expectScim(await org.get(`/Users/${id}`), 200)).toEqual(replaced);
    expect((await memberRow(s.t, org.oid, id))?.profile).not.toHaveProperty('title');
  });

  it('revokes a user sent "active":"false" by PUT and restores it on "active":"true"', async () => {
    const org = await s.organization();
    const { id, userName, externalId } = await createUser(org);
    const off = expectScim(await org.put(`/Users/${id}?`, fixture('onelogin', 'replace-user', { userName, externalId, active: 'false' })), 200);
    expect(off.active).toBe(false);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'revoked', previousStatus: 'invited' });
    const found = expectListResponse(await org.get(`/Users?${oneLoginFilter('externalId', externalId)}`), { totalResults: 1 });
    expect(found).toMatchObject([{ id, active: false }]);
    const on = expectScim(await org.put(`/Users/${id}?`, fixture('onelogin', 'replace-user', { userName, externalId, active: 'true' })), 200);
    expect(on.active).toBe(true);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'invited' });
  });

  it('adds and removes group members by PATCH, a removal leaving the other members in place', async () => {
    const org = await s.organization();
    const [a, b, c] = [await createUser(org), await createUser(org), await createUser(org)];
    const displayName = `OneLogin Role ${guid()}`;
    const group = expectCreated(await org.post('/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName }), org, 'Group');
    expect(group).toMatchObject({ displayName, members: [] });
    const byName = expectListResponse(await org.get(`/Groups?${oneLoginFilter('displayName', displayName)}`), { totalResults: 1 });
    expect(byName.map((g) => g.id)).toEqual([group.id]);

    const added = await org.patch(`/Groups/${group.id}`, fixture('onelogin', 'add-members', { members: [a, b, c].map((u) => ({ value: u.id })) }));
    expect(added.status).toBe(204);
    expect(await groupMemberIds(s.t, group.id)).toEqual([a.id, b.id, c.id].sort());
    const removed = await org.patch(`/Groups/${group.id}`, fixture('onelogin', 'remove-members', { members: [{ value: a.id }] }));
    expect(removed.status).toBe(204);
    const after = expectScim(await org.get(`/Groups/${group.id}`), 200);
    expect((after.members as { value: string }[]).map((m) => m.value).sort()).toEqual([b.id, c.id].sort());
  });
});
