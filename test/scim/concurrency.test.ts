/**
 * The races IdPs create (docs/idp-behaviour.md: Entra needs 25 requests/s per tenant and sends
 * membership changes in parallel; retries duplicate creates): concurrent membership PATCHes all
 * land, concurrent duplicate creates leave exactly one resource, concurrent creates never take
 * more seats than the organization has (issue 9: they share the organization's lock and take the
 * seat last), and a key rotated while a request waited no longer acts.
 */
import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import { expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
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
    for (let i = 0; i < n; i++) ids.push(expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('conc') }), org, 'User').id);
    return ids;
  }

  const group = async (org: ScimOrg, members: string[] = []) =>
    expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `Conc ${guid()}`, members: members.map((value) => ({ value })) }), org, 'Group')
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
      Array.from({ length: 10 }, (_, i) => org.post('/Users', { schemas: [CORE_USER], userName: i % 2 ? userName.toUpperCase() : userName })),
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
    const responses = await Promise.all(Array.from({ length: 10 }, () => org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('ext'), externalId })));
    exactlyOneCreated(responses);
    expect(await memberCount(s.t, org.oid)).toBe(1);
  });

  it('answers 10 parallel creates of one group displayName (in varying case) with exactly one 201', async () => {
    const org = await s.organization();
    const displayName = `Parallel ${guid()}`;
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) => org.post('/Groups', { schemas: [CORE_GROUP], displayName: i % 2 ? displayName.toLowerCase() : displayName, members: [] })),
    );
    exactlyOneCreated(responses);
    expect(await groupCount(s.t, org.oid)).toBe(1);
  });

  it('30 parallel creates into an organization with 10 free seats create exactly 10, refuse 20, and count 10 seats', async () => {
    const org = await s.organization({ seats: 12 });
    await users(org, 2);
    const responses = await Promise.all(Array.from({ length: 30 }, () => org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('seat') })));
    const created = responses.filter((r) => r.status === 201);
    expect(created).toHaveLength(10);
    for (const res of responses.filter((r) => r.status !== 201)) expectScimError(res, 403);
    expect(await memberCount(s.t, org.oid)).toBe(12);
    const [row] = await s.t.testDb.database.db
      .select({ seatsUsed: schema.organizations.seatsUsed })
      .from(schema.organizations)
      .where(eq(schema.organizations.id, org.oid));
    expect(row!.seatsUsed).toBe(12);
    expect((await restEvents(s.t, org)).filter((e) => e.type === 'member.invited')).toHaveLength(12);
  });

  it('parallel creates, deactivations and group PATCHes of one organization all land and keep seats exact', async () => {
    const org = await s.organization({ seats: 40 });
    const existing = await users(org, 10);
    const gid = await group(org);
    const responses = await Promise.all([
      ...Array.from({ length: 10 }, () => org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('mix') })),
      ...existing.slice(0, 5).map((id) => org.patch(`/Users/${id}`, fixture('entra', 'disable-user'))),
      ...existing.slice(5).map((id) => org.patch(`/Groups/${gid}`, fixture('entra', 'add-members', { members: [{ value: id }] }))),
    ]);
    expect(responses.map((r) => r.status).sort()).toEqual([...Array(10).fill(201), ...Array(5).fill(200), ...Array(5).fill(204)].sort());
    expect(await groupMemberIds(s.t, gid)).toEqual(existing.slice(5).sort());
    const rows = await s.t.testDb.database.db.select().from(schema.members).where(eq(schema.members.organizationId, org.oid));
    expect(rows).toHaveLength(20);
    const [row] = await s.t.testDb.database.db
      .select({ seatsUsed: schema.organizations.seatsUsed })
      .from(schema.organizations)
      .where(eq(schema.organizations.id, org.oid));
    expect(row!.seatsUsed).toBe(rows.filter((m) => m.status !== 'revoked').length);
    expect(row!.seatsUsed).toBe(15);
  });

  // PGlite runs one transaction at a time, so only PostgreSQL can make a request wait for a lock.
  it.runIf(driver === 'postgres')(
    'a create that waited while its key was rotated is refused with 401 and creates nothing (the rights are read after the lock)',
    async () => {
      const org = await s.organization();
      // Two connections: one holds the rotation's transaction open, the other watches for the waiting request.
      const raw = postgres(s.t.testDb.url!, { max: 2, onnotice: () => {} });
      try {
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        let locked!: () => void;
        const holding = new Promise<void>((resolve) => (locked = resolve));
        // A rotation in progress, as issueScimKey does it: the organization row held in update mode, the hash replaced.
        const rotation = raw.begin(async (tx) => {
          await tx`select id from organizations where id = ${org.oid} for update`;
          await tx`update scim_configs set token_hash = 'rotated' where organization_id = ${org.oid}`;
          locked();
          await released;
        });
        await holding;
        // The key is checked before the transaction (it is still valid then); the create then waits for the lock.
        const create = org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('late') });
        await expect.poll(
          async () =>
            (await raw`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)[0]!.n,
          { timeout: 10_000 },
        ).toBeGreaterThan(0);
        release();
        await rotation;
        expectScimError(await create, 401);
        expect(await memberCount(s.t, org.oid)).toBe(0);
      } finally {
        await raw.end();
      }
    },
  );
});
