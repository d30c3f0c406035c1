/**
 * The outbox sender: the only module that talks to SMTP. The engine writes mails to `outbox` in the
 * transaction of the change that causes them; this delivers them afterwards, so a request never
 * waits on a mail server, a rollback never mails and a crash never loses one (at-least-once).
 */
import { createTransport, type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { MailQueue, QueuedMail } from '../membership/index.js';

/** However many attempts failed, a mail is retried at least hourly until `maxAttempts`. */
const MAX_BACKOFF_MS = 60 * 60 * 1000;

export interface OutboxSenderOptions {
  /** The engine's outbox (`createMailQueue({ db, encryptionKey })`). */
  queue: MailQueue;
  /**
   * When unset, mails stay pending and each is logged once (recipient and subject, never the body)
   * so the operator reads it at `GET /api/v1/outbox` and passes its link on by hand.
   */
  smtpUrl?: string | undefined;
  from?: string;
  /**
   * The process logger: the sender binds `component: 'mail'` itself, as each module names its own
   * lines (a caller's child with another `component` would put the key twice in one JSON line).
   */
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

export function createOutboxSender(options: OutboxSenderOptions): OutboxSender {
  const { queue, smtpUrl } = options;
  const logger = options.logger.child({ component: 'mail' });
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

  async function deliver(mailer: Transporter, row: QueuedMail): Promise<boolean> {
    try {
      // Opened only now: until it is sent, the body (and its token) stays sealed at rest.
      const text = queue.openBody(row);
      await mailer.sendMail({ from, to: row.recipient, subject: row.subject, text });
      await queue.markSent(row, clock());
      return true;
    } catch (error) {
      // Only the message: SMTP errors carry the whole envelope and response objects.
      const lastError = error instanceof Error ? error.message : String(error);
      const exhausted = row.attempts >= maxAttempts;
      const backoff = Math.min(baseBackoffMs * 2 ** (row.attempts - 1), MAX_BACKOFF_MS);
      await queue.markFailed(row, { lastError, retryAt: exhausted ? undefined : new Date(clock().getTime() + backoff) });
      const fields = { mailId: row.id, attempts: row.attempts, error: lastError };
      if (exhausted) logger.error(fields, 'mail failed permanently');
      else logger.warn(fields, 'mail delivery failed; will retry');
      return false;
    }
  }

  /**
   * Logs each pending mail once, without its body: the body carries a redeemable token, and logs
   * are shipped and kept where the database's protection does not reach. The operator reads the
   * mail at GET /api/v1/outbox and passes its link on by hand.
   */
  function logBatch(): Promise<number> {
    return queue.logPending(clock(), {
      limit: batchSize,
      log: (mail) =>
        logger.info(
          { mailId: mail.id, to: mail.recipient, subject: mail.subject },
          'mail not sent: SMTP is not configured; read it at GET /api/v1/outbox',
        ),
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
      const rows = await queue.claimDue(clock(), { limit: batchSize, leaseMs });
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

