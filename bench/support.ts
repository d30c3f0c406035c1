/**
 * What the benchmarks share: `--key=value` flags, and a throwaway PostgreSQL database
 * (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local 127.0.0.1:5432/test) created next
 * to that URL's, migrated, and dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, type Database } from '../src/db/index.js';

/** `--users=100 --dry` → `{ users: '100', dry: '' }`. */
export function benchArgs(): Record<string, string> {
  return Object.fromEntries(
    process.argv.slice(2).map((a) => {
      const [k, v] = a.replace(/^--/, '').split('=');
      return [k!, v ?? ''];
    }),
  );
}

export const BENCH_BASE_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchDatabase {
  database: Database;
  name: string;
  /** The new database's URL, for a raw connection beside the app's. */
  url: string;
  /** Closes the app's pool and drops the database. */
  drop(): Promise<void>;
}

/** A fresh, migrated database named `<prefix>_<random>`. */
export async function createBenchDatabase(prefix = 'portico_bench'): Promise<BenchDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = postgres(BENCH_BASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(BENCH_BASE_URL);
  url.pathname = `/${name}`;
  const database = await openDatabase({ databaseUrl: url.toString(), dataDir: '', poolSize: 10 });
  const drop = async () => {
    await database.close();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  };
  try {
    await database.migrate();
  } catch (error) {
    await drop();
    throw error;
  }
  return { database, name, url: url.toString(), drop };
}
