/**
 * Database factory: embedded PGlite in `dataDir` when no `databaseUrl` is given, else PostgreSQL
 * through postgres.js. One schema and one set of queries serve both drivers.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from './schema.js';

export { schema };

/** The query surface shared by both drivers and by transactions. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  driver: 'pglite' | 'postgres';
  /** Applies the committed SQL migrations; safe to call from several instances at once. */
  migrate(): Promise<void>;
  /** Answers whether the database accepts a query (for /readyz). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL URL; when absent PGlite is used. */
  databaseUrl?: string | undefined;
  /** PGlite data directory; `memory://` keeps it in memory (tests). */
  dataDir: string;
  /** postgres.js pool size. */
  poolSize?: number;
}

export const migrationsFolder = fileURLToPath(new URL('../../migrations', import.meta.url));

/** Arbitrary constant key of the advisory lock that serialises migrations across instances. */
const MIGRATION_LOCK = 7_152_011;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.poolSize ?? 10);
  return openPglite(options.dataDir);
}

async function openPglite(dataDir: string): Promise<Database> {
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const client = await PGlite.create(dataDir);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    db,
    driver: 'pglite',
    // One process owns a PGlite directory, so no lock is needed.
    migrate: () => migratePglite(drizzlePglite(client), { migrationsFolder }),
    ping: () => pingWith(db),
    close: () => client.close(),
  };
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  const client = postgres(url, { max: poolSize, onnotice: () => {} });
  const db = drizzlePostgres(preparing(client), { schema }) as unknown as Db;
  return {
    db,
    driver: 'postgres',
    migrate: async () => {
      // A dedicated connection holds a session advisory lock so that instances starting together
      // apply each migration exactly once.
      const lockClient = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await lockClient`select pg_advisory_lock(${MIGRATION_LOCK})`;
        await migratePostgres(drizzlePostgres(lockClient), { migrationsFolder });
        await lockClient`select pg_advisory_unlock(${MIGRATION_LOCK})`;
      } finally {
        await lockClient.end();
      }
    },
    ping: () => pingWith(db),
    close: () => client.end({ timeout: 5 }),
  };
}

/**
 * drizzle asks postgres.js for a server-side prepared statement only for queries given a name, so
 * every other query would be parsed and planned on each execution. This view of the client
 * prepares them all (postgres.js keeps them per connection, keyed by the query text): measured
 * here, a primary-key select drops from 0.26 to 0.14 ms at p50 and from 1.6 to 0.7 ms at p99.
 * Transactions get the same view of their connection.
 */
function preparing(sql: postgres.Sql, texts: Set<string> = new Set()): postgres.Sql {
  return new Proxy(sql, {
    get(target, property, receiver) {
      if (property === 'unsafe') {
        return (query: string, parameters?: unknown[], options?: postgres.UnsafeQueryOptions) =>
          target.unsafe(query, parameters as postgres.ParameterOrJSON<never>[], {
            ...options,
            prepare: options?.prepare === true || shouldPrepare(texts, query),
          });
      }
      if (property === 'begin' || property === 'savepoint') {
        return (...args: unknown[]) => {
          const work = args.at(-1) as (tx: postgres.Sql) => unknown;
          const begin = Reflect.get(target, property, receiver) as (...a: unknown[]) => unknown;
          return begin.call(target, ...args.slice(0, -1), (tx: postgres.Sql) => work(preparing(tx, texts)));
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

/**
 * Query texts are partly shaped by clients (SCIM filter trees, id-list lengths), so the set of
 * prepared texts is bounded: past MAX_PREPARED distinct texts, new ones run unprepared.
 */
const MAX_PREPARED = 2_000;
function shouldPrepare(texts: Set<string>, query: string): boolean {
  if (texts.has(query)) return true;
  if (texts.size >= MAX_PREPARED) return false;
  texts.add(query);
  return true;
}

async function pingWith(db: Db): Promise<boolean> {
  try {
    await db.execute(sql`select 1`);
    return true;
  } catch {
    return false;
  }
}
