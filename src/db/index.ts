/**
 * Database factory: embedded PGlite in `dataDir` when no `databaseUrl` is given, else PostgreSQL
 * through postgres.js. One schema and one set of queries serve both drivers.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { isDatabaseUnavailable } from './errors.js';
import { lockDataDir } from './lock.js';
import * as schema from './schema.js';

export { schema };
export { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from './errors.js';
export { DataDirLocked } from './lock.js';
export { describeOpenFailure } from './open-failures.js';

/** The query surface shared by both drivers and by transactions. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  driver: 'pglite' | 'postgres';
  /** Applies the committed SQL migrations; safe to call from several instances at once. */
  migrate(): Promise<void>;
  /** Answers whether the database accepts a query (for /readyz), within PING_TIMEOUT_MS. */
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

/** From src/db and from the build's dist/src/db alike: the build copies migrations/ into dist/. */
export const migrationsFolder = fileURLToPath(new URL('../../migrations', import.meta.url));

/** Arbitrary constant key of the advisory lock that serialises migrations across instances. */
const MIGRATION_LOCK = 7_152_011;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.poolSize ?? 10);
  return openPglite(options.dataDir);
}

/**
 * PGlite's PostgreSQL keeps its default shared_buffers of 128 MB (in the wasm heap, touched as
 * used), which is most of an idle instance's memory. Measured here on 0.5.16 after opening an
 * existing folder: 318 MB RSS at 128 MB, 186 MB at 16 MB, 178 MB at 8 MB. 16 MB holds 2,048 pages,
 * more than this schema's working set, and the files sit in the OS page cache anyway.
 * (`initialMemory` cannot go below the module's own 128 MB minimum.)
 */
const PGLITE_START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

async function openPglite(dataDir: string): Promise<Database> {
  if (dataDir.startsWith('memory://')) return wrapPglite(await PGlite.create(dataDir, { startParams: PGLITE_START_PARAMS }));
  mkdirSync(dataDir, { recursive: true });
  const lock = lockDataDir(dataDir);
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await initPgliteDataDir(dataDir);
    const client = await PGlite.create(dataDir, { startParams: PGLITE_START_PARAMS });
    return wrapPglite(client, () => lock.release());
  } catch (error) {
    lock.release();
    throw error;
  }
}

/**
 * A new folder is initialised (initdb) in a child process that exits when done. PGlite 0.5.16 runs
 * initdb in a second wasm instance whose memory stays reachable from the instance that opened the
 * folder: measured here, 710 MB RSS idle after a first start against 223 MB after a restart.
 */
async function initPgliteDataDir(dataDir: string): Promise<void> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const script = `require(${JSON.stringify(entry)}).PGlite.create(process.argv[1], { startParams: JSON.parse(process.argv[2]) })
    .then((db) => db.close())
    .catch((error) => { console.error(error && error.message); process.exit(1); });`;
  try {
    await promisify(execFile)(process.execPath, ['-e', script, dataDir, JSON.stringify(PGLITE_START_PARAMS)], { env: {} });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`PGlite could not initialise ${dataDir}${stderr ? `: ${stderr}` : ''}`, { cause: error });
  }
}

function wrapPglite(client: PGlite, release: () => void = () => {}): Database {
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    db,
    driver: 'pglite',
    // The folder lock (lock.ts) makes this process the only one on it, so migrations need no lock.
    migrate: () => migratePglite(drizzlePglite(client), { migrationsFolder }),
    ping: () => pingWith(db),
    close: async () => {
      try {
        await client.close();
      } finally {
        release();
      }
    },
  };
}

/**
 * postgres.js reconnects a closed connection by itself, after a backoff that grows with the
 * failures the whole pool has seen (3^n/100 s) up to 20 s; queries wait for that reconnect. Capped
 * here at 2 s, so that during an outage a request fails within seconds (503) instead of hanging, and
 * once the database is back the pool is whole again within 2 s. An unreachable host fails a connect
 * after CONNECT_TIMEOUT_S instead of the driver's 30 s, for the same reason.
 *
 * `fetch_types` is off: the driver reads the array types on every new connection in a promise
 * nobody awaits, so a backend terminated at that moment is an unhandled rejection that ends the
 * process (porsager/postgres#1192, #1205; seen here with `pg_terminate_backend`). Our columns and
 * parameters have no PostgreSQL arrays (drizzle's `inArray` binds one parameter per value); an
 * array column would come back as its text form.
 */
const MAX_BACKOFF_S = 2;
const CONNECT_TIMEOUT_S = 5;
const reconnectBackoff = (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, MAX_BACKOFF_S);

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  const client = postgres(url, {
    max: poolSize,
    onnotice: () => {},
    backoff: reconnectBackoff,
    connect_timeout: CONNECT_TIMEOUT_S,
    fetch_types: false,
  });
  const db = drizzlePostgres(preparing(client), { schema }) as unknown as Db;
  return {
    db,
    driver: 'postgres',
    migrate: async () => {
      // A dedicated connection holds a session advisory lock so that instances starting together
      // apply each migration exactly once.
      const lockClient = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false });
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
 * A transaction (or savepoint) seen through `preparing`: `over` once its work settled (COMMIT or
 * ROLLBACK is under way), `lost` once its connection is known to be gone, `abandoned` once
 * postgres.js has settled `begin` for it (it does so as soon as the connection closes, while the
 * work may still be running).
 */
interface Scope {
  parent: Scope | undefined;
  over: boolean;
  lost: boolean;
  abandoned: boolean;
}

const lineage = (scope: Scope | undefined): Scope[] => (scope ? [scope, ...lineage(scope.parent)] : []);

/**
 * How long a transaction whose statement failed for want of a connection waits for postgres.js to
 * report the close before it hands the failure over (and so lets postgres.js roll back) after all.
 */
const LOST_CONNECTION_GRACE_MS = 5_000;

/**
 * drizzle asks postgres.js for a server-side prepared statement only for queries given a name, so
 * every other query would be parsed and planned on each execution. This view of the client
 * prepares them all (postgres.js keeps them per connection, keyed by the query text): measured
 * here, a primary-key select drops from 0.26 to 0.14 ms at p50 and from 1.6 to 0.7 ms at p99.
 *
 * Transactions get the same view of their connection, which also keeps postgres.js 3.4.7 from
 * writing on a connection that is gone. The driver defers small writes to a setImmediate that
 * dereferences the socket, so a statement issued on a transaction after its connection closed (the
 * next statement of the work, or the driver's own ROLLBACK once the work failed) throws an uncaught
 * TypeError that ends the process (porsager/postgres#1154 and #1208, still open in 3.4.9; seen
 * here with `pg_terminate_backend` during a burst of SCIM creates). So once a statement failed
 * because the connection went away, or postgres.js gave the transaction up, the view sends nothing
 * more and keeps the work's outcome from the driver: no ROLLBACK or COMMIT goes to a dead
 * connection, and the server has rolled the transaction back already. The caller gets the
 * connection error from `begin`. Statements after the work settled are refused as well: postgres.js
 * would send them on the released connection, where a write after ROLLBACK commits on its own
 * (measured: the insert of a sibling still running was kept).
 */
function preparing(sql: postgres.Sql, texts: Set<string> = new Set(), scope?: Scope): postgres.Sql {
  return new Proxy(sql, {
    get(target, property, receiver) {
      if (property === 'unsafe') {
        return (query: string, parameters?: unknown[], options?: postgres.UnsafeQueryOptions) => {
          if (lineage(scope).some((s) => s.over || s.lost)) throw transactionEnded();
          const pending = target.unsafe(query, parameters as postgres.ParameterOrJSON<never>[], {
            ...options,
            prepare: options?.prepare === true || shouldPrepare(texts, query),
          });
          // Promise's own `then`, not the query's: that would start the query before drizzle sets its options.
          if (scope) Promise.prototype.then.call(pending, undefined, (error: unknown) => observeFailure(scope, error));
          return pending;
        };
      }
      if (property === 'begin' || property === 'savepoint') {
        return (...args: unknown[]) => {
          if (lineage(scope).some((s) => s.over || s.lost)) throw transactionEnded();
          const work = args.at(-1) as (tx: postgres.Sql) => unknown;
          const begin = Reflect.get(target, property, receiver) as (...a: unknown[]) => Promise<unknown>;
          const inner: Scope = { parent: scope, over: false, lost: false, abandoned: false };
          const settled = begin.call(target, ...args.slice(0, -1), (tx: postgres.Sql) =>
            Promise.resolve(work(preparing(tx, texts, inner))).then(
              (value) => outcomeFor(inner, () => value),
              (error: unknown) => {
                observeFailure(inner, error);
                return outcomeFor(inner, () => Promise.reject(error));
              },
            ),
          );
          const abandon = () => {
            inner.abandoned = true;
            if (!inner.over) for (const s of lineage(inner)) s.lost = true;
          };
          settled.then(abandon, abandon);
          return settled;
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

/** A statement that failed for want of a connection: the whole transaction's connection is gone. */
function observeFailure(scope: Scope, error: unknown): void {
  if (isDatabaseUnavailable(error)) for (const s of lineage(scope)) s.lost = true;
}

/**
 * What the driver gets once the work settled: its outcome, unless the connection is lost. Then
 * nothing, ever, once postgres.js has given the transaction up; or the outcome after a grace period
 * if it never does (the connection lived after all, and ROLLBACK or COMMIT can go out as usual).
 */
function outcomeFor<T>(scope: Scope, outcome: () => T | Promise<T>): T | Promise<T> {
  scope.over = true;
  if (!lineage(scope).some((s) => s.lost)) return outcome();
  const transaction = lineage(scope).at(-1)!;
  return new Promise<T>((resolve) => {
    setTimeout(() => {
      if (!transaction.abandoned) resolve(outcome());
    }, LOST_CONNECTION_GRACE_MS).unref();
  });
}

const transactionEnded = () =>
  Object.assign(new Error('The transaction is over; the statement was not sent'), { code: 'TRANSACTION_ENDED' });

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

/** A readiness probe answers promptly: a database slower than this to answer `select 1` is not ready. */
const PING_TIMEOUT_MS = 2_000;

async function pingWith(db: Db): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
  });
  const answered = db.execute(sql`select 1`).then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
