/**
 * Rate limits that hold across every instance sharing the database: counters in `rate_limits`
 * behind rate-limiter-flexible's store interface, and the cap on mails per recipient.
 *
 * rate-limiter-flexible's own Postgres store wants the `pg`/knex/sequelize clients, and its Drizzle
 * store reads `Date.now()` and starts a pruning timer per limiter that nothing stops. This store
 * runs on our `Db` (PGlite or postgres.js), reads the engine's clock (tests move it instead of
 * sleeping), and leaves pruning to one timer that main stops at shutdown.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { and, eq, gt, isNull, lte, or, sql } from 'drizzle-orm';
import { RateLimiterRes, type RateLimiterAbstract, type RateLimiterStoreAbstract } from 'rate-limiter-flexible';
import { schema, type Db } from '../db/index.js';
import { normalizeEmail, type Tx } from './context.js';
import { MailRateLimited } from './errors.js';

// types.d.ts declares RateLimiterStoreAbstract, but the package's index does not export it (11.4.0).
const StoreAbstract = createRequire(import.meta.url)(
  'rate-limiter-flexible/lib/RateLimiterStoreAbstract',
) as typeof RateLimiterStoreAbstract;

export type RateLimiter = RateLimiterAbstract;

export interface RateLimitOptions {
  /** Prepended to every key, e.g. `auth:bearer`. */
  keyPrefix: string;
  /** Points a key may consume within one window. */
  points: number;
  /** The window in seconds, from a key's first point; 0 never expires. */
  duration: number;
}

/** The mail cap's window: mails per recipient are counted per hour. */
export const MAIL_WINDOW_SECONDS = 3600;

interface Counter {
  points: number;
  expiresAt: Date | null;
}

/** Per call (rate-limiter-flexible passes `options` through): run on a transaction's `db`. */
interface CallOptions {
  db?: Db;
}

class DatabaseRateLimiter extends StoreAbstract {
  constructor(
    private readonly database: Db,
    private readonly clock: () => Date,
    options: RateLimitOptions,
  ) {
    super({ ...options, storeClient: database });
  }

  /**
   * One statement, so concurrent consumers from any instance never lose a point: a new key starts
   * a window, a live one adds to it, and an expired one starts over in place.
   */
  async _upsert(key: string, points: number, msDuration: number, forceExpire = false, options: CallOptions = {}): Promise<Counter> {
    const r = schema.rateLimits;
    const now = this.clock();
    const expiresAt = msDuration > 0 ? new Date(now.getTime() + msDuration) : null;
    const expired = sql`${r.expiresAt} <= ${sql.param(now, r.expiresAt)}::timestamptz`;
    const [row] = await (options.db ?? this.database)
      .insert(r)
      .values({ key, points, expiresAt })
      .onConflictDoUpdate({
        target: r.key,
        set: forceExpire
          ? { points, expiresAt }
          : {
              points: sql`case when ${expired} then ${points}::integer else ${r.points} + ${points}::integer end`,
              expiresAt: sql`case when ${expired} then ${sql.param(expiresAt, r.expiresAt)}::timestamptz else ${r.expiresAt} end`,
            },
      })
      .returning({ points: r.points, expiresAt: r.expiresAt });
    return row!;
  }

  async _get(key: string, options: CallOptions = {}): Promise<Counter | null> {
    const r = schema.rateLimits;
    const [row] = await (options.db ?? this.database)
      .select({ points: r.points, expiresAt: r.expiresAt })
      .from(r)
      .where(and(eq(r.key, key), or(isNull(r.expiresAt), gt(r.expiresAt, this.clock()))));
    return row ?? null;
  }

  async _delete(key: string, options: CallOptions = {}): Promise<boolean> {
    const r = schema.rateLimits;
    const deleted = await (options.db ?? this.database).delete(r).where(eq(r.key, key)).returning({ key: r.key });
    return deleted.length > 0;
  }

  _getRateLimiterRes(_key: string, changedPoints: number, counter: Counter): RateLimiterRes {
    return new RateLimiterRes(
      Math.max(this.points - counter.points, 0),
      counter.expiresAt ? Math.max(counter.expiresAt.getTime() - this.clock().getTime(), 0) : -1,
      counter.points,
      counter.points === changedPoints,
    );
  }
}

/**
 * A rate-limiter-flexible limiter whose counters live in the database, so every instance sharing
 * it draws on one budget per key. Windows are fixed: they run from a key's first point.
 */
export function createRateLimiter(deps: { db: Db; clock: () => Date }, options: RateLimitOptions): RateLimiter {
  return new DatabaseRateLimiter(deps.db, deps.clock, options);
}

/** Whole seconds until a window passes, as `Retry-After` carries them (at least 1). */
export const retryAfterSeconds = (msBeforeNext: number): number => Math.max(1, Math.ceil(msBeforeNext / 1000));

/**
 * Counts one mail to `recipient` in the caller's transaction and refuses it with
 * `MailRateLimited` past the engine's `mailsPerRecipient` per hour (all kinds of mail together),
 * so re-inviting one address in a loop cannot mail it without end. A refused or rolled-back
 * change gives its point back with the transaction.
 */
export async function consumeMailBudget(tx: Tx, recipient: string): Promise<void> {
  const cap = tx.deps.limits?.mailsPerRecipient;
  if (!cap || cap <= 0) return;
  const limiter = createRateLimiter(
    { db: tx.db, clock: () => tx.now },
    { keyPrefix: 'mail', points: cap, duration: MAIL_WINDOW_SECONDS },
  );
  // Hashed: the table holds counters, not a list of addresses.
  const key = createHash('sha256').update(normalizeEmail(recipient)).digest('base64url');
  try {
    await limiter.consume(key, 1, { db: tx.db });
  } catch (error) {
    if (error instanceof RateLimiterRes) throw new MailRateLimited(retryAfterSeconds(error.msBeforeNext));
    throw error;
  }
}

/** Deletes counters whose window has passed; returns how many. */
export async function pruneRateLimits(db: Db, now: Date): Promise<number> {
  const r = schema.rateLimits;
  const deleted = await db.delete(r).where(lte(r.expiresAt, now)).returning({ key: r.key });
  return deleted.length;
}
