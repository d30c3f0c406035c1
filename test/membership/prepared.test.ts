/**
 * `reusable` (src/membership/prepared.ts) builds a query once and runs it on whichever session it
 * is given. It leans on drizzle internals (pinned 0.45.4), so this pins what it must do: inside a
 * transaction it runs on that transaction (it sees its uncommitted writes, and its rollback takes
 * them back), outside it runs on the pool, on both drivers.
 */
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { schema, type Db } from '../../src/db/index.js';
import { reusable } from '../../src/membership/prepared.js';
import { describeEachDriver, openTestDatabase, type TestDatabase } from '../support/db.js';

const u = schema.users;
const userByEmail = reusable('test_user_by_email', (db) => db.select({ id: u.id }).from(u).where(eq(u.email, sql.placeholder('email'))));

describeEachDriver('queries built once', (driver) => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await openTestDatabase(driver);
  });
  afterAll(() => testDb.close());

  it('runs in the transaction it is given, seeing its uncommitted writes, and on the pool outside one', async () => {
    const db = testDb.database.db;
    const id = crypto.randomUUID();
    const email = `prepared-${id}@example.test`;
    await expect(userByEmail(db, { email })).resolves.toEqual([]);
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(u).values({ id, email, createdAt: new Date() });
        expect(await userByEmail(tx as unknown as Db, { email })).toEqual([{ id }]);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await expect(userByEmail(db, { email })).resolves.toEqual([]);
  });
});
