/**
 * What the composition roots share to reach the same data: main.ts (the server) and cli.ts (the
 * operator CLI) open the database the configuration names, with the same ENCRYPTION_KEY, and build
 * the engine's dependencies the same way, so a command sees exactly what the server sees.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/index.js';
import type { EngineDeps } from './membership/index.js';
import { createTxtResolver } from './sso/dns.js';

/** Where the generated key lives with PGlite (no ENCRYPTION_KEY). */
export const localKeyFile = (config: Pick<Config, 'dataDir'>): string => join(config.dataDir, 'encryption.key');

/**
 * ENCRYPTION_KEY, or with PGlite the key generated once into DATA_DIR (created here on first use).
 * The config schema requires ENCRYPTION_KEY with DATABASE_URL, so that case never generates.
 */
export function resolveEncryptionKey(config: Config): string {
  if (config.encryptionKey) return config.encryptionKey;
  if (config.databaseUrl) throw new Error('ENCRYPTION_KEY is unset; make one with `openssl rand -base64 32`');
  // An in-memory database lives as long as the process: so does its key, and no folder is made.
  if (config.dataDir.startsWith('memory://')) return randomBytes(32).toString('base64');
  mkdirSync(config.dataDir, { recursive: true });
  const file = localKeyFile(config);
  if (!existsSync(file)) {
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}

/** The database the configuration names: PostgreSQL with DATABASE_URL, else PGlite in DATA_DIR. Not migrated. */
export const openConfiguredDatabase = (config: Config): Promise<Database> =>
  openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });

/** The engine's dependencies for `config` over `database`. */
export function engineDepsFor(config: Config, database: Database, encryptionKey: string): EngineDeps {
  return {
    db: database.db,
    clock: () => new Date(),
    publicUrl: config.publicUrl,
    encryptionKey,
    limits: { mailsPerRecipient: config.rateLimits.mailsPerRecipient },
    resolveTxt: createTxtResolver(config.dnsServers),
  };
}

/** The key, the (unmigrated) database and the engine's dependencies, as the server has them. */
export async function openStorage(config: Config): Promise<{ database: Database; engineDeps: EngineDeps }> {
  const encryptionKey = resolveEncryptionKey(config);
  const database = await openConfiguredDatabase(config);
  return { database, engineDeps: engineDepsFor(config, database, encryptionKey) };
}
