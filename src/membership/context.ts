/**
 * What every engine operation receives: the database (or the transaction it runs in), the clock,
 * the public URL for mailed links and the key that seals secrets at rest. Values travel as
 * arguments; nothing is kept on modules.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../db/index.js';
import { Conflict } from './errors.js';

export interface EngineDeps {
  db: Db;
  /** Injected so tests can move time (token expiry, access-event hours). */
  clock: () => Date;
  /** Base of links in mails, e.g. `http://localhost:8080`. */
  publicUrl: string;
  /** ENCRYPTION_KEY: seals what must be read back (pending mail bodies) with `secret-box.ts`. */
  encryptionKey: string;
  /** TXT lookups for domain verification (DNS_SERVERS); absent: every lookup fails. */
  resolveTxt?: ((name: string) => Promise<string[][]>) | undefined;
  /** Throttles kept in the database (`rate-limits.ts`); absent or 0: unlimited. */
  limits?: { mailsPerRecipient: number } | undefined;
}

/** A unit of work: one transaction, one `now` for every row it writes. */
export interface Tx {
  db: Db;
  now: Date;
  deps: EngineDeps;
}

/** Runs `work` in one transaction: the change, its events and its mails commit or roll back together. */
export async function inTransaction<T>(deps: EngineDeps, work: (tx: Tx) => Promise<T>): Promise<T> {
  return deps.db.transaction(async (db) => work({ db: db as unknown as Db, now: deps.clock(), deps }));
}

/**
 * Awaits statements of one transaction issued together (postgres.js pipelines them on its
 * connection). Unlike Promise.all, it lets every one settle before it rethrows the first failure,
 * so the unit of work never ends, and ROLLBACK never runs, while a sibling is still issuing
 * statements; and it rethrows the failure that came first, the cause, not a later "current
 * transaction is aborted" (25P02).
 */
export async function pipelined(statements: (Promise<unknown> | undefined)[]): Promise<void> {
  let failure: { reason: unknown } | undefined;
  await Promise.all(
    statements.map((statement) =>
      statement?.catch((reason: unknown) => {
        failure ??= { reason };
      }),
    ),
  );
  if (failure) throw failure.reason;
}

export const newId = (): string => randomUUID();

/** The name of the unique constraint an error violated (PGlite and postgres.js spell it differently). */
export function uniqueViolation(error: unknown): string | undefined {
  for (let e: unknown = error; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const candidate = e as { code?: unknown; constraint?: unknown; constraint_name?: unknown };
    if (candidate.code === '23505') {
      const name = candidate.constraint ?? candidate.constraint_name;
      return typeof name === 'string' ? name : 'unknown';
    }
  }
  return undefined;
}

/** Runs `work`; a violation of one of `constraints` becomes a `Conflict` with `message`. */
export async function translateConflicts<T>(
  work: () => Promise<T>,
  constraints: Record<string, string>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const name = uniqueViolation(error);
    const message = name ? constraints[name] : undefined;
    // The message names the field; the constraint itself stays internal.
    if (message) throw new Conflict(message, { cause: error });
    throw error;
  }
}

export const normalizeEmail = (email: string): string => email.trim().toLowerCase();
