/**
 * The races IdPs create (docs/idp-behaviour.md: Entra needs 25 requests/s per tenant and sends
 * membership changes in parallel; retries duplicate creates): concurrent membership PATCHes all
 * land, and concurrent duplicate creates leave exactly one resource.
 */
import { eq } from 'drizzle-orm';
import { expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { describeEachDriver } from '../support/db.js';
import {
  expectCreated,
  expectScim,
  expectScimError,
  fixture,
  groupCount,
  groupMemberIds,
  guid,
  memberCount,
  restEvents,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
  type ScimResponse,
} from '../support/scim.js';

describeEachDriver('SCIM under concurrency', (driver) => {
  const s = useScimApp(driver);

  async function users(org: ScimOrg, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(expectCreated(await org.post('/Users', { userName: uniqueEmail('conc') }), org, 'User').id);
    return ids;
  }

  const group = async (org: ScimOrg, members: string[] = []) =>
    expectCreated(await org.post('/Groups', { displayName: `Conc ${guid()}`, members: members.map((value) => ({ value })) }), org, 'Group')
      .id as string;

  /** Exactly one 201; every other answer 409 uniqueness. */
  function exactlyOneCreated(responses: ScimResponse[]): void {
    const created = responses.filter((r) => r.status === 201);
    expect(created).toHaveLength(1);
    for (const res of responses.filter((r) => r.status !== 201)) expectScimError(res, 409, 'uniqueness');
  }

  it('keeps every member of 20 concurrent member-add PATCHes to one group', async () => {
    const org = await s.organization();
    const ids = await users(org, 20);
    const gid = await group(org);
    const responses = await Promise.all(
      ids.map((id) => org.patch(`/Groups/${gid}`, fixture('entra', 'add-members', { members: [{ value: id }] }))),
    );
    for (const res of responses) expect(res.status).toBe(204);
    expect(await groupMemberIds(s.t, gid)).toEqual([...ids].sort());
    const members = expectScim(await org.get(`/Groups/${gid}`), 200).members as { value: string }[];
    expect(members.map((m) => m.value).sort()).toEqual([...ids].sort());
  });

  it('applies concurrent removes and adds of different members without losing or resurrecting any', async () => {
    const org = await s.organization();
    const ids = await users(org, 20);
    const [leaving, joining] = [ids.slice(0, 10), ids.slice(10)];
    const gid = await group(org, leaving);
    const responses = await Promise.all([
      ...leaving.map((id) => org.patch(`/Groups/${gid}`, fixture('entra', 'remove-members', { members: [{ value: id }] }))),
      ...joining.map((id) => org.patch(`/Groups/${gid}`, fixture('entra', 'add-members', { members: [{ value: id }] }))),
    ]);
    for (const res of responses) expect(res.status).toBe(204);
    expect(await groupMemberIds(s.t, gid)).toEqual([...joining].sort());
  });

  it('keeps one membership row when the same member is added ten times at once', async () => {
    const org = await s.organization();
    const [id] = await users(org, 1);
    const gid = await group(org);
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => org.patch(`/Groups/${gid}`, fixture('entra', 'add-members', { members: [{ value: id! }] }))),
    );
    for (const res of responses) expect(res.status).toBe(204);
    expect(await groupMemberIds(s.t, gid)).toEqual([id]);
  });

  it('answers 10 parallel creates of one userName (in varying case) with exactly one 201 and 409 uniqueness for the rest', async () => {
    const org = await s.organization();
    const userName = uniqueEmail('dup');
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) => org.post('/Users', { userName: i % 2 ? userName.toUpperCase() : userName })),
    );
    exactlyOneCreated(responses);
    expect(await memberCount(s.t, org.oid)).toBe(1);
    expect((await restEvents(s.t, org)).filter((e) => e.type === 'member.invited')).toHaveLength(1);
    const mails = await s.t.testDb.database.db.select().from(schema.outbox).where(eq(schema.outbox.recipient, userName));
    expect(mails).toHaveLength(1);
  });

  it('answers 10 parallel creates sharing one externalId with exactly one 201', async () => {
    const org = await s.organization();
    const externalId = guid();
    const responses = await Promise.all(Array.from({ length: 10 }, () => org.post('/Users', { userName: uniqueEmail('ext'), externalId })));
    exactlyOneCreated(responses);
    expect(await memberCount(s.t, org.oid)).toBe(1);
  });

  it('answers 10 parallel creates of one group displayName (in varying case) with exactly one 201', async () => {
    const org = await s.organization();
    const displayName = `Parallel ${guid()}`;
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) => org.post('/Groups', { displayName: i % 2 ? displayName.toLowerCase() : displayName, members: [] })),
    );
    exactlyOneCreated(responses);
    expect(await groupCount(s.t, org.oid)).toBe(1);
  });
});
