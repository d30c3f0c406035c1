/**
 * The outbox sender: the only module that talks to SMTP. The engine writes mails to `outbox` in the
 * transaction of the change that causes them; this delivers them afterwards, so a request never
 * waits on a mail server, a rollback never mails and a crash never loses one (at-least-once).
 */
import { and, asc, eq, inArray, isNull, lte, sql } from 'drizzle-orm';
import { createTransport, type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import { schema, type Db } from '../db/index.js';

const { outbox } = schema;

/** However many attempts failed, a mail is retried at least hourly until `maxAttempts`. */
const MAX_BACKOFF_MS = 60 * 60 * 1000;

export interface OutboxSenderOptions {
  db: Db;
  /** When unset, mails stay pending and are logged once so the operator can pass links on by hand. */
  smtpUrl?: string | undefined;
  from?: string;
  logger: Logger;
  /** Injected so tests can move past backoffs and leases without sleeping. */
  clock?: () => Date;
  batchSize?: number;
  maxAttempts?: number;
  pollIntervalMs?: number;
  /** The first retry waits this long; each further one doubles it, up to an hour. */
  baseBackoffMs?: number;
  /** How long a claim hides a row from other instances; a crash mid-send retries it after this. */
  leaseMs?: number;
}

export interface RunResult {
  sent: number;
  /** Deliveries that failed in this run; they are retried later unless attempts are exhausted. */
  failed: number;
  /** Mails logged because SMTP is not configured. */
  logged: number;
}

export interface OutboxSender {
  /** Processes batches until nothing is due. */
  runOnce(): Promise<RunResult>;
  /** Polls in the background; errors are logged, never thrown. */
  start(): void;
  /** Stops polling, waits for runs in flight and closes the SMTP transport. */
  stop(): Promise<void>;
}

type OutboxRow = typeof outbox.$inferSelect;

export function createOutboxSender(options: OutboxSenderOptions): OutboxSender {
  const { db, smtpUrl } = options;
  const logger = options.logger.child({ component: 'outbox' });
  const clock = options.clock ?? (() => new Date());
  const from = options.from ?? 'Portico <no-reply@localhost>';
  const batchSize = options.batchSize ?? 20;
  const maxAttempts = options.maxAttempts ?? 8;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const baseBackoffMs = options.baseBackoffMs ?? 30_000;
  const leaseMs = options.leaseMs ?? 5 * 60 * 1000;
  const transport = smtpUrl ? createTransport(smtpUrl) : undefined;

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<unknown>>();

  /**
   * Claims due rows in one statement. SKIP LOCKED lets instances claim disjoint rows, and the
   * lease (next_attempt_at pushed forward) keeps a claimed row from being claimed again while it
   * is being sent, without holding a transaction open across the SMTP conversation.
   */
  async function claimDue(now: Date): Promise<OutboxRow[]> {
    const due = db
      .select({ id: outbox.id })
      .from(outbox)
      .where(and(eq(outbox.status, 'pending'), lte(outbox.nextAttemptAt, now)))
      .orderBy(asc(outbox.nextAttemptAt), asc(outbox.seq))
      .limit(batchSize)
      .for('update', { skipLocked: true });
    return db
      .update(outbox)
      .set({ nextAttemptAt: new Date(now.getTime() + leaseMs), attempts: sql`${outbox.attempts} + 1` })
      .where(inArray(outbox.id, due))
      .returning();
  }

  async function deliver(mailer: Transporter, row: OutboxRow): Promise<boolean> {
    try {
      await mailer.sendMail({ from, to: row.recipient, subject: row.subject, text: row.body });
      // Once delivered, the mail's one-time tokens are no longer kept: only the mailbox has them.
      await db
        .update(outbox)
        .set({ status: 'sent', sentAt: clock(), lastError: null, body: redactTokens(row.body) })
        .where(eq(outbox.id, row.id));
      return true;
    } catch (error) {
      // Only the message: SMTP errors carry the whole envelope and response objects.
      const lastError = error instanceof Error ? error.message : String(error);
      const exhausted = row.attempts >= maxAttempts;
      const backoff = Math.min(baseBackoffMs * 2 ** (row.attempts - 1), MAX_BACKOFF_MS);
      await db
        .update(outbox)
        .set(
          exhausted
            ? { status: 'failed', lastError }
            : { lastError, nextAttemptAt: new Date(clock().getTime() + backoff) },
        )
        .where(eq(outbox.id, row.id));
      const fields = { mailId: row.id, attempts: row.attempts, error: lastError };
      if (exhausted) logger.error(fields, 'mail failed permanently');
      else logger.warn(fields, 'mail delivery failed; will retry');
      return false;
    }
  }

  /**
   * Logs each pending mail once. Logging happens before the transaction that sets logged_at
   * commits, so a crash repeats a log line rather than losing the link the operator needs.
   */
  async function logBatch(): Promise<number> {
    return db.transaction(async (tx) => {
      const rows = await tx
        .select()
        .from(outbox)
        .where(and(eq(outbox.status, 'pending'), isNull(outbox.loggedAt)))
        .orderBy(asc(outbox.seq))
        .limit(batchSize)
        .for('update', { skipLocked: true });
      for (const row of rows) {
        const fields = { mailId: row.id, to: row.recipient, subject: row.subject, body: row.body };
        logger.info(fields, 'mail not sent: SMTP is not configured');
      }
      if (rows.length > 0) {
        await tx.update(outbox).set({ loggedAt: clock() }).where(inArray(outbox.id, rows.map((row) => row.id)));
      }
      return rows.length;
    });
  }

  async function drain(): Promise<RunResult> {
    const result: RunResult = { sent: 0, failed: 0, logged: 0 };
    // A short batch means nothing else was due (or another instance holds it).
    for (let full = true; full && !stopped; ) {
      if (!transport) {
        const logged = await logBatch();
        result.logged += logged;
        full = logged === batchSize;
        continue;
      }
      const rows = await claimDue(clock());
      for (const row of rows) {
        if (await deliver(transport, row)) result.sent += 1;
        else result.failed += 1;
      }
      full = rows.length === batchSize;
    }
    return result;
  }

  function track<T>(run: Promise<T>): Promise<T> {
    inFlight.add(run);
    void run.finally(() => inFlight.delete(run)).catch(() => {});
    return run;
  }

  /** Schedules the next run only after this one settled, so runs never overlap. */
  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      track(drain())
        .catch((error: unknown) => logger.error({ err: error }, 'outbox run failed'))
        .finally(schedule);
    }, pollIntervalMs);
    // Pending mail must not keep the process alive on shutdown.
    timer.unref();
  }

  return {
    runOnce: () => track(drain()),
    start() {
      stopped = false;
      if (!timer) schedule();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await Promise.allSettled([...inFlight]);
      transport?.close();
    },
  };
}

/** The body with each link's `token` parameter blanked out. */
export function redactTokens(body: string): string {
  return body.replace(/([?&]token=)[^\s&]+/g, '$1(sent)');
}
