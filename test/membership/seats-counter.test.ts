/**
 * The organization's seats-in-use counter is what seat checks read, so it must always equal the
 * number of invited, accepted and confirmed members, whatever sequence of changes ran.
 */
import { and, count, eq, ne } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { describeEachDriver, openTestDatabase, type TestDatabase } from '../support/db.js';
import { createWorld, type World } from '../support/world.js';

describeEachDriver('seats in use', (driver) => {
  let testDb: TestDatabase;
  let w: World;
  beforeAll(async () => {
    testDb = await openTestDatabase(driver);
  });
  afterAll(() => testDb.close());
  beforeEach(async () => {
    await testDb.truncate();
    w = createWorld(testDb.database.db);
  });

  async function expectCounterTrue(organizationId: string, expected: number) {
    const [org] = await w.db.select().from(schema.organizations).where(eq(schema.organizations.id, organizationId));
    const m = schema.members;
    const [counted] = await w.db
      .select({ n: count() })
      .from(m)
      .where(and(eq(m.organizationId, organizationId), ne(m.status, 'revoked')));
    expect(org!.seatsUsed).toBe(counted!.n);
    expect(org!.seatsUsed).toBe(expected);
  }

  it('counts invites, revokes, restores and removals exactly, and refusals not at all', async () => {
    const client = await w.managedClient({ seats: 4, ownerEmail: 'owner@contoso.example' });
    const by = client.admin.principal;
    const org = await w.engine.organization(client.org.id, by);
    await expectCounterTrue(client.org.id, 1);

    const { invited } = await org.inviteMembers({ emails: ['a@c.example', 'b@c.example', 'A@c.example'], role: 'user' });
    await expectCounterTrue(client.org.id, 3);
    // Inviting someone already there takes no seat.
    await org.inviteMembers({ emails: ['a@c.example'], role: 'user' });
    await expectCounterTrue(client.org.id, 3);

    await org.revokeMember(invited[0]!.id);
    await expectCounterTrue(client.org.id, 2);
    await org.removeMember(invited[0]!.id); // a revoked member frees nothing more
    await expectCounterTrue(client.org.id, 2);

    const confirmed = await w.addMember(client.org.id, by, { email: 'c@c.example' });
    await expectCounterTrue(client.org.id, 3);
    await org.revokeMember(confirmed.member.id);
    await org.restoreMember(confirmed.member.id);
    await expectCounterTrue(client.org.id, 3);

    // A batch beyond the seats is refused whole.
    await expect(org.inviteMembers({ emails: ['d@c.example', 'e@c.example'], role: 'user' })).rejects.toMatchObject({
      code: 'organization.seat_limit',
    });
    await expectCounterTrue(client.org.id, 3);

    await org.removeMember(invited[1]!.id);
    await expectCounterTrue(client.org.id, 2);
  });

  it('lets seats be lowered to what is in use but not below', async () => {
    const client = await w.managedClient({ seats: 5 });
    const org = await w.engine.organization(client.org.id, client.admin.principal);
    await org.inviteMembers({ emails: ['a@c.example', 'b@c.example'], role: 'user' });
    const provider = await w.engine.provider(client.provider.id, client.admin.principal);
    await expect(provider.updateClient(client.org.id, { seats: 1 })).rejects.toMatchObject({ code: 'input.invalid' });
    expect((await provider.updateClient(client.org.id, { seats: 2 })).seats).toBe(2);
    await expectCounterTrue(client.org.id, 2);
  });
});
