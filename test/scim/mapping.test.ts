/**
 * How SCIM maps onto the membership engine (domain.md, Provisioning sources: SCIM): a created user
 * is an invited member with role user and a mailed invitation, every change is attributed to the
 * SCIM system actor, uniqueness is case-insensitive on userName and exact on externalId, and seats
 * are enforced with a SCIM error.
 */
import { eq } from 'drizzle-orm';
import { expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  expectCreated,
  expectScim,
  expectScimError,
  guid,
  memberCount,
  patchOp,
  restEvents,
  restMember,
  snapshot,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

describeEachDriver('SCIM users as organization members', (driver) => {
  const s = useScimApp(driver);

  const outboxCount = async (email: string) =>
    (await s.t.testDb.database.db.select().from(schema.outbox).where(eq(schema.outbox.recipient, email))).length;

  async function createUser(org: ScimOrg, extra: Record<string, unknown> = {}) {
    const userName = uniqueEmail('member');
    const body = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName, ...extra }), org, 'User');
    return { id: body.id as string, userName, body };
  }

  it('creates an invited member with role user, mails the invitation, and records member.invited by the SCIM actor', async () => {
    const org = await s.organization();
    const { id, userName } = await createUser(org, { externalId: 'hr-1', name: { givenName: 'Nina', familyName: 'Rao' } });

    const member = await restMember(s.t, org, id);
    expect(member.status).toBe(200);
    expect(member.body).toMatchObject({
      id,
      organizationId: org.oid,
      email: userName,
      externalId: 'hr-1',
      name: 'Nina Rao',
      role: 'user',
      status: 'invited',
      userId: null,
    });

    const events = await restEvents(s.t, org);
    const invited = events.filter((e) => e.type === 'member.invited');
    expect(invited).toEqual([
      expect.objectContaining({ type: 'member.invited', code: 1500, actor: { system: 'scim' }, organizationId: org.oid, memberId: id }),
    ]);

    // The mailed token is a real invitation: accepting it makes the member accepted.
    const accepted = await s.t.request('POST', '/api/v1/invitations/accept', { body: { token: await s.t.mailedToken(userName) } });
    expect(accepted.status).toBe(200);
    expect(accepted.body.user.email).toBe(userName);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'accepted', userId: accepted.body.user.id });
  });

  it('attributes every change of a SCIM sequence to the SCIM system actor', async () => {
    const org = await s.organization();
    const before = (await restEvents(s.t, org)).length;
    const { id } = await createUser(org);
    const group = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `G ${guid()}` }), org, 'Group');
    expect((await org.patch(`/Groups/${group.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: id }] }))).status).toBe(204);
    expectScim(await org.patch(`/Users/${id}`, patchOp({ op: 'replace', path: 'title', value: 'Engineer' })), 200);
    expectScim(await org.patch(`/Users/${id}`, patchOp({ op: 'replace', path: 'active', value: false })), 200);
    expectScim(await org.patch(`/Users/${id}`, patchOp({ op: 'replace', path: 'active', value: true })), 200);
    expect((await org.delete(`/Groups/${group.id}`)).status).toBe(204);
    expect((await org.delete(`/Users/${id}`)).status).toBe(204);

    const events = (await restEvents(s.t, org)).slice(0, -before || undefined);
    expect(events.map((e) => e.type).sort()).toEqual(
      [
        'member.invited',
        'group.created',
        'group.updated',
        'member.updated',
        'member.revoked',
        'member.restored',
        'group.deleted',
        'member.removed',
      ].sort(),
    );
    for (const event of events) expect(event.actor, event.type).toEqual({ system: 'scim' });
  });

  it('records nothing for a PATCH or PUT restating current values, as Entra re-sends Add for attributes that have them', async () => {
    const org = await s.organization();
    const { id, userName } = await createUser(org, { externalId: 'same', name: { givenName: 'Sam', familyName: 'Same' }, title: 'Lead' });
    const before = await snapshot(s.t, org.oid);
    s.t.clock.advance(60_000);
    const patched = expectScim(
      await org.patch(`/Users/${id}`, patchOp({ op: 'Add', path: 'title', value: 'Lead' }, { op: 'Add', path: 'name.givenName', value: 'Sam' })),
      200,
    );
    const put = expectScim(await org.put(`/Users/${id}`, { schemas: [CORE_USER], userName, externalId: 'same', name: { givenName: 'Sam', familyName: 'Same' }, title: 'Lead' }), 200);
    expect(patched.meta.lastModified).toBe(before.members[0]!.updatedAt.toISOString());
    expect(put).toEqual(patched);
    expect(await snapshot(s.t, org.oid)).toEqual(before);
  });

  it('removes the membership on DELETE while the person account survives', async () => {
    const org = await s.organization();
    const { id, userName } = await createUser(org);
    const accepted = await s.t.request('POST', '/api/v1/invitations/accept', { body: { token: await s.t.mailedToken(userName) } });
    expect(accepted.status).toBe(200);
    expect((await org.delete(`/Users/${id}`)).status).toBe(204);
    expect((await restMember(s.t, org, id)).status).toBe(404);
    const me = await s.t.request('GET', '/api/v1/me', { token: accepted.body.apiToken });
    expect(me.status).toBe(200);
    expect(me.body.user.email).toBe(userName);
    expect(me.body.organizations).toEqual([]);
  });

  it('refuses a userName that differs from a member only in case with 409 uniqueness, creating and mailing nothing', async () => {
    const org = await s.organization();
    const { userName } = await createUser(org);
    const before = await snapshot(s.t, org.oid);
    const mails = await outboxCount(userName);
    expectScimError(await org.post('/Users', { schemas: [CORE_USER], userName: userName.toUpperCase() }), 409, 'uniqueness');
    expect(await snapshot(s.t, org.oid)).toEqual(before);
    expect(await outboxCount(userName)).toBe(mails);
  });

  it('refuses a duplicate externalId with 409 uniqueness, while an externalId differing only in case is another one', async () => {
    const org = await s.organization();
    await createUser(org, { externalId: 'AbC-1' });
    const before = await snapshot(s.t, org.oid);
    expectScimError(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail(), externalId: 'AbC-1' }), 409, 'uniqueness');
    expect(await snapshot(s.t, org.oid)).toEqual(before);
    const other = await createUser(org, { externalId: 'abc-1' });
    expect(other.body.externalId).toBe('abc-1');
    expect(await memberCount(s.t, org.oid)).toBe(2);
  });

  it("refuses renaming a user onto another member's userName or externalId with 409 uniqueness and changes nothing", async () => {
    const org = await s.organization();
    const first = await createUser(org, { externalId: 'first' });
    const second = await createUser(org, { externalId: 'second' });
    const before = await snapshot(s.t, org.oid);
    expectScimError(
      await org.patch(`/Users/${second.id}`, patchOp({ op: 'replace', path: 'userName', value: first.userName.toUpperCase() })),
      409,
      'uniqueness',
    );
    expectScimError(await org.put(`/Users/${second.id}`, { schemas: [CORE_USER], userName: second.userName, externalId: 'first' }), 409, 'uniqueness');
    expect(await snapshot(s.t, org.oid)).toEqual(before);
  });

  it('refuses a create beyond the seats with a 403 SCIM error, creating and mailing nothing; a revoke frees a seat', async () => {
    const org = await s.organization({ seats: 2 });
    const first = await createUser(org);
    await createUser(org);
    const before = await snapshot(s.t, org.oid);
    const third = uniqueEmail('third');
    const refused = await org.post('/Users', { schemas: [CORE_USER], userName: third });
    expectScimError(refused, 403);
    expect(refused.body.detail).toMatch(/seat/i);
    expect(await snapshot(s.t, org.oid)).toEqual(before);
    expect(await outboxCount(third)).toBe(0);

    expectScim(await org.patch(`/Users/${first.id}`, patchOp({ op: 'replace', path: 'active', value: false })), 200);
    const created = await createUser(org);
    expect((await restMember(s.t, org, created.id)).body.status).toBe('invited');

    // Now full again: reactivating the revoked user needs a seat, refused with 403 and it stays revoked.
    const beforeRestore = await snapshot(s.t, org.oid);
    expectScimError(await org.patch(`/Users/${first.id}`, patchOp({ op: 'replace', path: 'active', value: true })), 403);
    expect(await snapshot(s.t, org.oid)).toEqual(beforeRestore);
    expect((await restMember(s.t, org, first.id)).body.status).toBe('revoked');
  });

  it('creates a user sent with active:false as a revoked member that holds no seat', async () => {
    const org = await s.organization({ seats: 1 });
    const { id, body } = await createUser(org, { active: false });
    expect(body.active).toBe(false);
    expect((await restMember(s.t, org, id)).body).toMatchObject({ status: 'revoked', previousStatus: 'invited' });
    await createUser(org);
    expect(await memberCount(s.t, org.oid)).toBe(2);
  });
});
