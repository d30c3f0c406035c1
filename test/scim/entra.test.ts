/**
 * Entra ID's request sequences (docs/idp-behaviour.md, Entra ID) replayed end to end against the
 * real app: connection test, lookup, create, PATCH in both of Entra's modes, disable and
 * re-enable, delete, and group provisioning.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import {
  acceptInvitation,
  CORE_GROUP,
  CORE_USER,
  ENTERPRISE_USER,
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
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

describeEachDriver('SCIM with Entra ID', (driver) => {
  const s = useScimApp(driver);

  async function createUser(org: ScimOrg, userName = uniqueEmail('adele')) {
    const externalId = guid();
    const body = expectCreated(await org.post('/Users', fixture('entra', 'create-user', { userName, externalId })), org, 'User');
    return { id: body.id as string, userName, externalId, body };
  }

  async function createGroup(org: ScimOrg, displayName = `Sales ${guid()}`) {
    const externalId = guid();
    const body = expectCreated(await org.post('/Groups', fixture('entra', 'create-group', { displayName, externalId })), org, 'Group');
    return { id: body.id as string, displayName, externalId, body };
  }

  const memberValues = async (org: ScimOrg, groupId: string): Promise<string[]> => {
    const group = expectScim(await org.get(`/Groups/${groupId}`), 200);
    return (group.members as { value: string }[]).map((m) => m.value).sort();
  };

  it('answers the connection test for a random userName and group displayName with 200 empty ListResponses', async () => {
    const org = await s.organization();
    await createUser(org);
    await createGroup(org);
    expect(expectListResponse(await org.get(`/Users?filter=userName+eq+"${guid()}"`), { totalResults: 0 })).toEqual([]);
    expect(
      expectListResponse(await org.get(`/Groups?excludedAttributes=members&filter=displayName+eq+"${guid()}"`), { totalResults: 0 }),
    ).toEqual([]);
  });

  it('creates a user from the enterprise-extension POST with 201, Location, meta and every attribute as sent, as an invited member', async () => {
    const org = await s.organization();
    const userName = `Adele.Vance.${guid().slice(0, 8)}@Contoso.example`;
    const now = s.t.clock.now.toISOString();
    const { id, externalId, body } = await createUser(org, userName);
    expect(body).toEqual({
      schemas: [CORE_USER, ENTERPRISE_USER],
      id,
      externalId,
      userName,
      active: true,
      emails: [{ primary: true, type: 'work', value: userName }],
      name: { formatted: 'Adele Vance', familyName: 'Vance', givenName: 'Adele' },
      roles: [],
      [ENTERPRISE_USER]: { employeeNumber: '1001', department: 'Retail' },
      meta: { resourceType: 'User', created: now, lastModified: now, location: `${org.baseUrl}/Users/${id}` },
    });
    // Entra caches our id forever: the same document comes back by id.
    expect(expectScim(await org.get(`/Users/${id}`), 200)).toEqual(body);
    const member = await restMember(s.t, org, id);
    expect(member.status).toBe(200);
    expect(member.body).toMatchObject({ id, email: userName.toLowerCase(), externalId, role: 'user', status: 'invited', name: 'Adele Vance' });
  });

  it('finds a user by userName in any case, by externalId and by emails[type eq "work"].value, alone or joined by and', async () => {
    const org = await s.organization();
    const other = await createUser(org);
    const { id, userName, externalId } = await createUser(org);
    const filters = [
      `userName eq "${userName.toUpperCase()}"`,
      `externalId eq "${externalId}"`,
      `emails[type eq "work"].value eq "${userName}"`,
      `userName eq "${userName}" and externalId eq "${externalId}"`,
    ];
    for (const filter of filters) {
      const found = expectListResponse(await org.get(`/Users?filter=${encodeURIComponent(filter)}`), { totalResults: 1 });
      expect(found.map((u) => u.id), filter).toEqual([id]);
      expect(found[0].meta.location).toBe(`${org.baseUrl}/Users/${id}`);
    }
    expect(
      expectListResponse(await org.get(`/Users?filter=${encodeURIComponent(`userName eq "${userName}" and externalId eq "${other.externalId}"`)}`), {
        totalResults: 0,
      }),
    ).toEqual([]);
  });

  it('applies capitalised Replace and Add ops on value-filtered, dotted and enterprise-URN paths, Add overwriting existing values', async () => {
    const org = await s.organization();
    const { id, userName, externalId, body: created } = await createUser(org);
    s.t.clock.advance(60_000);
    const workEmail = uniqueEmail('adele.work');
    const patched = expectScim(await org.patch(`/Users/${id}`, fixture('entra', 'update-user', { workEmail })), 200);
    expect(patched).toEqual({
      ...created,
      emails: [{ primary: true, type: 'work', value: workEmail }],
      name: { formatted: 'Adele Vance', familyName: 'Vance-Smith', givenName: 'Adèle' },
      [ENTERPRISE_USER]: { employeeNumber: '1002', department: 'Marketing' },
      meta: { ...created.meta, lastModified: s.t.clock.now.toISOString() },
    });
    expect(expectScim(await org.get(`/Users/${id}`), 200)).toEqual(patched);
    // The work mailbox is the member's email: it moves with it, while the userName stays.
    expect((await restMember(s.t, org, id)).body).toMatchObject({ email: workEmail, userName, externalId, status: 'invited' });
  });

  it('takes the manager as a bare string id, and a later Add of another manager replaces it', async () => {
    const org = await s.organization();
    const first = await createUser(org);
    const second = await createUser(org);
    const { id } = await createUser(org);
    const withFirst = expectScim(await org.patch(`/Users/${id}`, fixture('entra', 'set-manager', { managerId: first.id })), 200);
    expect(withFirst[ENTERPRISE_USER]).toEqual({ employeeNumber: '1001', department: 'Retail', manager: { value: first.id } });
    const withSecond = expectScim(await org.patch(`/Users/${id}`, fixture('entra', 'set-manager', { managerId: second.id })), 200);
    expect(withSecond[ENTERPRISE_USER]).toEqual({ employeeNumber: '1001', department: 'Retail', manager: { value: second.id } });
    expect(expectScim(await org.get(`/Users/${id}`), 200)[ENTERPRISE_USER].manager).toEqual({ value: second.id });
    const managed = expectListResponse(
      await org.get(`/Users?filter=${encodeURIComponent(`${ENTERPRISE_USER}:manager.value eq "${second.id}"`)}`),
      { totalResults: 1 },
    );
    expect(managed.map((u) => u.id)).toEqual([id]);
  });

  it('applies the ?aadOptscim062020 form: one no-path replace with dotted keys, an extension URN key and a real boolean', async () => {
    const org = await s.organization();
    const { id, body: created } = await createUser(org);
    const patched = expectScim(await org.patch(`/Users/${id}?aadOptscim062020`, fixture('entra', 'update-user-aadoptscim062020')), 200);
    expect(patched).toEqual({
      ...created,
      active: false,
      name: { formatted: 'Adele Vance', familyName: 'Lovelace', givenName: 'Ada' },
      [ENTERPRISE_USER]: { employeeNumber: '2002', department: 'Retail' },
    });
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'revoked', previousStatus: 'invited' });
  });

  it('revokes a user disabled with the string "False", still returns it by id and by filters, and restores its previous status on "True"', async () => {
    const org = await s.organization();
    const { id, userName } = await createUser(org);
    await acceptInvitation(s.t, userName);
    expect((await restMember(s.t, org, id)).body.status).toBe('accepted');

    const disabled = expectScim(await org.patch(`/Users/${id}`, fixture('entra', 'disable-user')), 200);
    expect(disabled.active).toBe(false);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'revoked', previousStatus: 'accepted' });
    expect(expectScim(await org.get(`/Users/${id}`), 200)).toMatchObject({ id, active: false });
    for (const filter of [`userName eq "${userName}"`, 'active eq false']) {
      const found = expectListResponse(await org.get(`/Users?filter=${encodeURIComponent(filter)}`), { totalResults: 1 });
      expect(found).toMatchObject([{ id, active: false }]);
    }
    expect(expectListResponse(await org.get(`/Users?filter=${encodeURIComponent('active eq true')}`), { totalResults: 0 })).toEqual([]);

    const enabled = expectScim(await org.patch(`/Users/${id}`, fixture('entra', 'enable-user')), 200);
    expect(enabled.active).toBe(true);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'accepted', previousStatus: null });
  });

  it('deletes a user with 204, then answers 404 for it and the membership is gone', async () => {
    const org = await s.organization();
    const keep = await createUser(org);
    const { id } = await createUser(org);
    const deleted = await org.delete(`/Users/${id}`);
    expect(deleted.status).toBe(204);
    expect(deleted.body).toBeUndefined();
    expectScimError(await org.get(`/Users/${id}`), 404);
    expectScimError(await org.delete(`/Users/${id}`), 404);
    expect((await restMember(s.t, org, id)).status).toBe(404);
    expect(await memberCount(s.t, org.oid)).toBe(1);
    expect((await restMember(s.t, org, keep.id)).status).toBe(200);
  });

  it('creates a group with the extra Microsoft schema URN and empty members, finds it by displayName in any case, and refuses a duplicate name with 409', async () => {
    const org = await s.organization();
    const { id, displayName, externalId, body } = await createGroup(org);
    expect(body).toEqual({
      schemas: [CORE_GROUP],
      id,
      displayName,
      externalId,
      members: [],
      meta: { resourceType: 'Group', created: expect.any(String), lastModified: expect.any(String), location: `${org.baseUrl}/Groups/${id}` },
    });
    const found = expectListResponse(
      await org.get(`/Groups?excludedAttributes=members&filter=${encodeURIComponent(`displayName eq "${displayName.toUpperCase()}"`)}`),
      { totalResults: 1 },
    );
    expect(found).toEqual([{ schemas: [CORE_GROUP], id, displayName, externalId, meta: body.meta }]);

    const duplicate = await org.post('/Groups', fixture('entra', 'create-group', { displayName: displayName.toLowerCase(), externalId: guid() }));
    expectScimError(duplicate, 409, 'uniqueness');
    expect(await groupCount(s.t, org.oid)).toBe(1);
  });

  it('adds members with 204, dedupes redundant adds, and removes only the listed members in the value form and the filtered form', async () => {
    const org = await s.organization();
    const [a, b, c, d] = [await createUser(org), await createUser(org), await createUser(org), await createUser(org)];
    const { id: gid, displayName } = await createGroup(org);
    const add = await org.patch(`/Groups/${gid}`, fixture('entra', 'add-members', { members: [{ value: a.id }, { value: b.id }, { value: c.id }, { value: d.id }] }));
    expect(add.status).toBe(204);
    expect(add.body).toBeUndefined();
    expect(await memberValues(org, gid)).toEqual([a.id, b.id, c.id, d.id].sort());

    // Entra re-sends adds of existing members: no duplicate rows, nothing else changes.
    expect((await org.patch(`/Groups/${gid}`, fixture('entra', 'add-members', { members: [{ value: a.id }, { value: b.id }] }))).status).toBe(204);
    expect(await groupMemberIds(s.t, gid)).toEqual([a.id, b.id, c.id, d.id].sort());

    expect((await org.patch(`/Groups/${gid}`, fixture('entra', 'remove-members', { members: [{ value: b.id }] }))).status).toBe(204);
    expect(await memberValues(org, gid)).toEqual([a.id, c.id, d.id].sort());

    expect((await org.patch(`/Groups/${gid}`, fixture('entra', 'remove-member-filtered', { memberId: c.id }))).status).toBe(204);
    expect(await memberValues(org, gid)).toEqual([a.id, d.id].sort());
    expect(await groupMemberIds(s.t, gid)).toEqual([a.id, d.id].sort());

    // The users see their group; removed users have none.
    expect(expectScim(await org.get(`/Users/${a.id}`), 200).groups).toEqual([{ value: gid, display: displayName, $ref: `${org.baseUrl}/Groups/${gid}` }]);
    expect(expectScim(await org.get(`/Users/${b.id}`), 200).groups).toBeUndefined();
  });

  it('renames a group by replacing displayName, and deletes it with 204 then 404 while its members stay', async () => {
    const org = await s.organization();
    const user = await createUser(org);
    const { id: gid } = await createGroup(org);
    await org.patch(`/Groups/${gid}`, fixture('entra', 'add-members', { members: [{ value: user.id }] }));
    const newName = `Renamed ${guid()}`;
    const renamed = await org.patch(`/Groups/${gid}`, fixture('entra', 'rename-group', { displayName: newName }));
    expect(renamed.status).toBe(204);
    expect(expectScim(await org.get(`/Groups/${gid}`), 200)).toMatchObject({ id: gid, displayName: newName, members: [{ value: user.id }] });
    const byName = expectListResponse(await org.get(`/Groups?filter=${encodeURIComponent(`displayName eq "${newName}"`)}`), { totalResults: 1 });
    expect(byName.map((g) => g.id)).toEqual([gid]);

    const deleted = await org.delete(`/Groups/${gid}`);
    expect(deleted.status).toBe(204);
    expectScimError(await org.get(`/Groups/${gid}`), 404);
    expect(expectScim(await org.get(`/Users/${user.id}`), 200).groups).toBeUndefined();
    expect(await groupCount(s.t, org.oid)).toBe(0);
  });
});
