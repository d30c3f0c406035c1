/**
 * The outbox as a queue for the sender (src/mail): claim due mails, record delivery or failure,
 * and log pending mails when no SMTP server is configured. The engine writes mails with
 * `enqueueMail` in the transaction of the change that causes them, their bodies sealed with
 * ENCRYPTION_KEY; the queue opens a body only to send it.
 */
import { and, asc, eq, inArray, isNull, lte, sql } from 'drizzle-orm';
import { schema } from '../db/index.js';
import type { EngineDeps } from './context.js';
import { openBody } from './mail.js';

const { outbox } = schema;

export interface QueuedMail {
  id: string;
  recipient: string;
  subject: string;
  /** The body as stored: sealed while the mail is pending or failed (see `MailQueue.openBody`). */
  storedBody: string;
  /** Delivery attempts so far, this one included. */
  attempts: number;
}

export interface MailQueue {
  /**
   * Claims up to `limit` due mails in one statement. SKIP LOCKED lets instances claim disjoint
   * rows, and the lease (next_attempt_at pushed forward) keeps a claimed row from being claimed
   * again while it is being sent, without a transaction open across the SMTP conversation.
   */
  claimDue(now: Date, options: { limit: number; leaseMs: number }): Promise<QueuedMail[]>;
  /**
   * The body to send, opened at send time. Throws `SecretUnreadable` when it was sealed with
   * another ENCRYPTION_KEY (a delivery failure like any other: retried, then failed for good).
   */
  openBody(mail: QueuedMail): string;
  /**
   * Records a delivery. The body is kept opened with its one-time tokens blanked, as only the
   * mailbox needs them now.
   */
  markSent(mail: QueuedMail, at: Date): Promise<void>;
  /**
   * Records a failed delivery: retried at `retryAt`, or failed for good without one. A failed mail
   * keeps its body sealed: the operator can still read it, a database dump cannot.
   */
  markFailed(mail: QueuedMail, failure: { lastError: string; retryAt?: Date | undefined }): Promise<void>;
  /**
   * Hands up to `limit` pending, not yet logged mails to `log`, then marks them logged. Logging
   * happens before that commits, so a crash repeats a log line rather than losing a notice. The
   * body stays sealed: a log line must never carry a token.
   */
  logPending(now: Date, options: { limit: number; log: (mail: QueuedMail) => void }): Promise<number>;
}

const queued = (row: typeof outbox.$inferSelect): QueuedMail => ({
  id: row.id,
  recipient: row.recipient,
  subject: row.subject,
  storedBody: row.body,
  attempts: row.attempts,
});

export function createMailQueue({ db, encryptionKey }: Pick<EngineDeps, 'db' | 'encryptionKey'>): MailQueue {
  const open = (mail: QueuedMail) => openBody(encryptionKey, { id: mail.id, body: mail.storedBody });
  return {
    async claimDue(now, { limit, leaseMs }) {
      const due = db
        .select({ id: outbox.id })
        .from(outbox)
        .where(and(eq(outbox.status, 'pending'), lte(outbox.nextAttemptAt, now)))
        .orderBy(asc(outbox.nextAttemptAt), asc(outbox.seq))
        .limit(limit)
        .for('update', { skipLocked: true });
      const rows = await db
        .update(outbox)
        .set({ nextAttemptAt: new Date(now.getTime() + leaseMs), attempts: sql`${outbox.attempts} + 1` })
        .where(inArray(outbox.id, due))
        .returning();
      return rows.map(queued);
    },
    openBody: open,
    async markSent(mail, at) {
      await db
        .update(outbox)
        .set({ status: 'sent', sentAt: at, lastError: null, body: redactTokens(open(mail)) })
        .where(eq(outbox.id, mail.id));
    },
    async markFailed(mail, { lastError, retryAt }) {
      await db
        .update(outbox)
        .set(retryAt ? { lastError, nextAttemptAt: retryAt } : { status: 'failed', lastError })
        .where(eq(outbox.id, mail.id));
    },
    async logPending(now, { limit, log }) {
      return db.transaction(async (tx) => {
        const rows = await tx
          .select()
          .from(outbox)
          .where(and(eq(outbox.status, 'pending'), isNull(outbox.loggedAt)))
          .orderBy(asc(outbox.seq))
          .limit(limit)
          .for('update', { skipLocked: true });
        for (const row of rows) log(queued(row));
        if (rows.length > 0) {
          await tx.update(outbox).set({ loggedAt: now }).where(inArray(outbox.id, rows.map((row) => row.id)));
        }
        return rows.length;
      });
    },
  };
}

/** The body with each link's `token` parameter blanked out. */
export function redactTokens(body: string): string {
  return body.replace(/([?&]token=)[^\s&]+/g, '$1(sent)');
}
