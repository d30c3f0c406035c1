/**
 * Test databases. Each test file opens one migrated database per driver: an in-memory PGlite, and
 * a fresh PostgreSQL database created next to TEST_DATABASE_URL (default: the machine's
 * 127.0.0.1:5432/test). Without a reachable PostgreSQL the postgres suites skip and say why,
 * except in CI (CI=true), where its absence fails the run.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { describe } from 'vitest';
import { openDatabase, type Database } from '../../src/db/index.js';

export type Driver = 'pglite' | 'postgres';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function probePostgres(): Promise<string | undefined> {
  const client = postgres(TEST_DATABASE_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await client`select 1`;
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${TEST_DATABASE_URL.replace(/\/\/[^@]*@/, '//')} is not reachable (${(error as Error).message})`;
  } finally {
    await client.end({ timeout: 1 });
  }
}

const postgresProblem = await probePostgres();
if (postgresProblem && process.env.CI) {
  throw new Error(`${postgresProblem}; CI must run the PostgreSQL suites. Set TEST_DATABASE_URL.`);
}
if (postgresProblem) {
  console.warn(`SKIPPING PostgreSQL suites: ${postgresProblem}. Set TEST_DATABASE_URL to run them.`);
}

export const postgresAvailable = postgresProblem === undefined;

/** `describe` once per driver; the PostgreSQL one skips (saying so) only when it is absent outside CI. */
export function describeEachDriver(name: string, body: (driver: Driver) => void): void {
  describe(`${name} [pglite]`, () => body('pglite'));
  describe.skipIf(!postgresAvailable)(
    `${name} [postgres]${postgresAvailable ? '' : ' (skipped: PostgreSQL absent)'}`,
    () => body('postgres'),
  );
}

export interface TestDatabase {
  database: Database;
  url?: string;
  /** Empties every table (between tests). */
  truncate(): Promise<void>;
  close(): Promise<void>;
}

const TABLES = [
  'events',
  'outbox',
  'invitations',
  'provider_accesses',
  'collection_members',
  'collection_groups',
  'group_members',
  'policies',
  'collections',
  'groups',
  'members',
  'organizations',
  'provider_users',
  'providers',
  'api_tokens',
  'users',
  'system_settings',
  'scim_configs',
];

/** Opens a migrated, empty database of `driver`. */
export async function openTestDatabase(driver: Driver): Promise<TestDatabase> {
  let url: string | undefined;
  let dropDatabase = async () => {};
  if (driver === 'postgres') {
    const name = `portico_test_${randomBytes(6).toString('hex')}`;
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    await admin.end();
    const parsed = new URL(TEST_DATABASE_URL);
    parsed.pathname = `/${name}`;
    url = parsed.toString();
    dropDatabase = async () => {
      const again = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      await again.unsafe(`drop database if exists ${name} with (force)`);
      await again.end();
    };
  }
  const database = await openDatabase({ databaseUrl: url, dataDir: 'memory://', poolSize: 20 });
  await database.migrate();
  return {
    database,
    url,
    truncate: async () => {
      await database.db.execute(sql.raw(`truncate ${TABLES.join(', ')} restart identity cascade`));
    },
    close: async () => {
      await database.close();
      await dropDatabase();
    },
  };
}
