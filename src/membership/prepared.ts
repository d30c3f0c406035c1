/**
 * Queries built once. drizzle turns a query builder into SQL text on every call, about a fifth of
 * a SCIM write's CPU (issue 9); a prepared query keeps the text, with placeholders for the values.
 * A drizzle prepared query is bound to the session it was built on, and every transaction has its
 * own, so `reusable` builds once per driver and runs the built query on the session of the `db` it
 * is given: the pool's or a transaction's. The statement itself is prepared on the server by
 * `openDatabase` (postgres.js, keyed by its text) or by PGlite.
 */
import type { Db } from '../db/index.js';

interface Prepared<R> {
  execute(placeholders?: Record<string, unknown>): Promise<R>;
}

/**
 * `build` (called once per driver, with any `db` of it) makes the query with `sql.placeholder(…)`
 * for its values; the answer runs it on `db` with those values.
 */
export function reusable<R>(
  name: string,
  build: (db: Db) => { prepare(name: string): Prepared<R> },
): (db: Db, values: Record<string, unknown>) => Promise<R> {
  // By session class: PGlite and postgres.js differ, and tests use both in one process.
  const built = new Map<unknown, Prepared<R>>();
  return (db, values) => {
    // drizzle 0.45 (pinned): both drivers' prepared queries run on their `client` field, and a
    // session's `client` is its connection or transaction (test/membership/prepared.test.ts).
    const session = db._.session as unknown as { client: unknown; constructor: unknown };
    let query = built.get(session.constructor);
    if (!query) built.set(session.constructor, (query = build(db).prepare(name)));
    const bound = Object.create(query) as Prepared<R> & { client: unknown };
    bound.client = session.client;
    return bound.execute(values);
  };
}
