/**
 * JumpCloud's request sequences (docs/idp-behaviour.md, JumpCloud) replayed end to end against the
 * real app: the activation check (list, create a test user and group, delete both), groups created
 * with their members, one PATCH op per attribute with a path, and value-form member removal.
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
  fixture,
  groupCount,
  groupMemberIds,
  guid,
  memberCount,
  restMember,
  snapshot,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

describeEachDriver('SCIM with JumpCloud', (driver) => {
  const s = useScimApp(driver);

  async function createUser(org: ScimOrg, names = { givenName: 'Test', familyName: 'User' }) {
    const userName = uniqueEmail('jc');
    const externalId = guid().replace(/-/g, '').slice(0, 24);
    const displayName = `${names.givenName} ${names.familyName}`;
    const body = expectCreated(
      await org.post('/Users', fixture('jumpcloud', 'create-user', { userName, externalId, displayName, ...names })),
      org,
      'User',
    );
    return { id: body.id as string, userName, externalId, body };
  }

  it('passes activation: lists users, creates a test user and a group holding it, then deletes both and leaves nothing behind', async () => {
    const org = await s.organization();
    const existing = await createUser(org, { givenName: 'Real', familyName: 'Person' });
    const before = await snapshot(s.t, org.oid);

    const listed = expectListResponse(await org.get('/Users'), { totalResults: 1 });
    expect(listed.map((u) => u.id)).toEqual([existing.id]);

    const testUser = await createUser(org);
    expect(testUser.body).toEqual({
      schemas: [CORE_USER],
      id: testUser.id,
      userName: testUser.userName,
      externalId: testUser.externalId,
      active: true,
      displayName: 'Test User',
      name: { givenName: 'Test', familyName: 'User' },
      emails: [{ value: testUser.userName, type: 'work', primary: true }],
      meta: testUser.body.meta,
    });
    const groupName = `JumpCloud Test Group ${guid()}`;
    const group = expectCreated(
      await org.post('/Groups', fixture('jumpcloud', 'create-group', { displayName: groupName, externalId: 'jc-test', members: [{ value: testUser.id }] })),
      org,
      'Group',
    );
    expect(group).toEqual({
      schemas: [CORE_GROUP],
      id: group.id,
      displayName: groupName,
      externalId: 'jc-test',
      members: [{ value: testUser.id, display: testUser.userName, $ref: `${org.baseUrl}/Users/${testUser.id}`, type: 'User' }],
      meta: group.meta,
    });

    expect((await org.delete(`/Groups/${group.id}`)).status).toBe(204);
    expect((await org.delete(`/Users/${testUser.id}`)).status).toBe(204);
    expectScimError(await org.get(`/Groups/${group.id}`), 404);
    expectScimError(await org.get(`/Users/${testUser.id}`), 404);
    expect((await restMember(s.t, org, testUser.id)).status).toBe(404);
    const after = await snapshot(s.t, org.oid);
    expect({ members: after.members, groups: after.groups, links: after.links }).toEqual({
      members: before.members,
      groups: before.groups,
      links: before.links,
    });
  });

  it('creates a group with its members in the POST', async () => {
    const org = await s.organization();
    const [a, b] = [await createUser(org), await createUser(org)];
    const group = expectCreated(
      await org.post('/Groups', fixture('jumpcloud', 'create-group', { displayName: `Staff ${guid()}`, externalId: guid(), members: [{ value: a.id }, { value: b.id }] })),
      org,
      'Group',
    );
    expect((group.members as { value: string }[]).map((m) => m.value).sort()).toEqual([a.id, b.id].sort());
    expect(await groupMemberIds(s.t, group.id)).toEqual([a.id, b.id].sort());
    expect(expectScim(await org.get(`/Users/${a.id}`), 200).groups).toEqual([
      { value: group.id, display: group.displayName, $ref: `${org.baseUrl}/Groups/${group.id}` },
    ]);
  });

  it('applies one PATCH op per attribute, each with a path', async () => {
    const org = await s.organization();
    const { id, body: created } = await createUser(org);
    const patched = expectScim(await org.patch(`/Users/${id}`, fixture('jumpcloud', 'update-user')), 200);
    expect(patched).toEqual({
      ...created,
      displayName: 'Megan Bowen',
      name: { givenName: 'Megan', familyName: 'Bowen' },
      title: 'Auditor',
    });
    expect((await restMember(s.t, org, id)).body.name).toBe('Megan Bowen');
  });

  it('removes members in the value form, leaving the others, and re-adding an existing member does not duplicate it', async () => {
    const org = await s.organization();
    const [a, b, c] = [await createUser(org), await createUser(org), await createUser(org)];
    const group = expectCreated(
      await org.post('/Groups', fixture('jumpcloud', 'create-group', { displayName: `Team ${guid()}`, externalId: guid(), members: [a, b, c].map((u) => ({ value: u.id })) })),
      org,
      'Group',
    );
    const removed = await org.patch(`/Groups/${group.id}`, fixture('jumpcloud', 'remove-members', { members: [{ value: b.id }, { value: c.id }] }));
    expect(removed.status).toBe(204);
    expect(await groupMemberIds(s.t, group.id)).toEqual([a.id]);
    expect((await org.patch(`/Groups/${group.id}`, fixture('jumpcloud', 'add-members', { members: [{ value: a.id }, { value: b.id }] }))).status).toBe(204);
    expect(await groupMemberIds(s.t, group.id)).toEqual([a.id, b.id].sort());
    expect(await memberCount(s.t, org.oid)).toBe(3);
    expect(await groupCount(s.t, org.oid)).toBe(1);
  });
});
