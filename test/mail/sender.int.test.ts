/**
 * The outbox sender against a real SMTP server (smtp-server on port 0) and both database drivers.
 */
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { pino, type Logger } from 'pino';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { createMailQueue } from '../../src/membership/index.js';
import { createOutboxSender, type OutboxSender, type OutboxSenderOptions } from '../../src/mail/sender.js';
import { TEST_ENCRYPTION_KEY } from '../support/app.js';
import { describeEachDriver, openTestDatabase, type TestDatabase } from '../support/db.js';

interface Received {
  to: string[];
  raw: string;
}

/** An SMTP sink that records what it accepts and, while `rejecting`, answers RCPT TO with 451. */
async function startSink() {
  const received: Received[] = [];
  const state = { rejecting: false };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(_address, _session, callback) {
      if (!state.rejecting) return callback();
      callback(Object.assign(new Error('mailbox busy, try later'), { responseCode: 451 }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        received.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString() });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    state,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const silent = pino({ level: 'silent' });

describeEachDriver('outbox sender', (driver) => {
  let testDb: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSink>>;
  let now: Date;
  const clock = () => now;
  const senders: OutboxSender[] = [];

  const makeSender = (overrides: Partial<OutboxSenderOptions> = {}): OutboxSender => {
    const sender = createOutboxSender({
      queue: createMailQueue({ db: testDb.database.db, encryptionKey: TEST_ENCRYPTION_KEY }),
      smtpUrl: sink.url,
      logger: silent,
      clock,
      baseBackoffMs: 60_000,
      ...overrides,
    });
    senders.push(sender);
    return sender;
  };

  const insertMail = async (values: Partial<typeof schema.outbox.$inferInsert> = {}) => {
    const row = {
      id: randomUUID(),
      recipient: 'alice@example.test',
      subject: 'Join Acme on Portico',
      body: 'Accept within 120 hours: http://portico.test/accept?token=abc123',
      nextAttemptAt: now,
      createdAt: now,
      ...values,
    };
    await testDb.database.db.insert(schema.outbox).values(row);
    return row;
  };

  const readMail = async (id: string) => {
    const [row] = await testDb.database.db.select().from(schema.outbox).where(eq(schema.outbox.id, id));
    if (!row) throw new Error(`outbox row ${id} is missing`);
    return row;
  };

  beforeAll(async () => {
    testDb = await openTestDatabase(driver);
    sink = await startSink();
  });

  afterAll(async () => {
    await sink?.close();
    await testDb?.close();
  });

  beforeEach(async () => {
    await testDb.truncate();
    sink.received.length = 0;
    sink.state.rejecting = false;
    now = new Date('2030-01-01T00:00:00Z');
  });

  afterEach(async () => {
    await Promise.all(senders.splice(0).map((sender) => sender.stop()));
  });

  it('a pending mail is delivered once and marked sent', async () => {
    const mail = await insertMail();
    const sender = makeSender();

    expect(await sender.runOnce()).toEqual({ sent: 1, failed: 0, logged: 0 });
    expect(await sender.runOnce()).toEqual({ sent: 0, failed: 0, logged: 0 });

    expect(sink.received).toHaveLength(1);
    expect(sink.received[0]!.to).toEqual([mail.recipient]);
    expect(sink.received[0]!.raw).toContain(`Subject: ${mail.subject}`);
    expect(sink.received[0]!.raw).toContain('http://portico.test/accept?token=abc123');
    expect(await readMail(mail.id)).toMatchObject({ status: 'sent', attempts: 1, sentAt: now, lastError: null });
    // Once delivered, the one-time token is no longer kept in the outbox.
    const stored = await readMail(mail.id);
    expect(stored.body).not.toContain('abc123');
    expect(stored.body).toContain('http://portico.test/accept?token=(sent)');
  });

  it('a rejected mail stays pending with a backoff and is delivered once the server recovers', async () => {
    const mail = await insertMail();
    const sender = makeSender();
    sink.state.rejecting = true;

    expect(await sender.runOnce()).toEqual({ sent: 0, failed: 1, logged: 0 });
    const afterFailure = await readMail(mail.id);
    expect(afterFailure).toMatchObject({ status: 'pending', attempts: 1, sentAt: null });
    expect(afterFailure.lastError).toContain('451');
    expect(afterFailure.nextAttemptAt).toEqual(new Date(now.getTime() + 60_000));

    sink.state.rejecting = false;
    expect(await sender.runOnce()).toEqual({ sent: 0, failed: 0, logged: 0 });
    expect(sink.received).toHaveLength(0);

    now = new Date(now.getTime() + 60_000);
    expect(await sender.runOnce()).toEqual({ sent: 1, failed: 0, logged: 0 });
    expect(sink.received).toHaveLength(1);
    expect(await readMail(mail.id)).toMatchObject({ status: 'sent', attempts: 2, sentAt: now });
  });

  it('a mail that fails maxAttempts times is marked failed and no longer retried', async () => {
    const mail = await insertMail();
    const sender = makeSender({ maxAttempts: 3 });
    sink.state.rejecting = true;

    for (const backoff of [60_000, 120_000]) {
      expect(await sender.runOnce()).toEqual({ sent: 0, failed: 1, logged: 0 });
      const row = await readMail(mail.id);
      expect(row.status).toBe('pending');
      expect(row.nextAttemptAt).toEqual(new Date(now.getTime() + backoff));
      now = row.nextAttemptAt;
    }
    expect(await sender.runOnce()).toEqual({ sent: 0, failed: 1, logged: 0 });
    expect(await readMail(mail.id)).toMatchObject({ status: 'failed', attempts: 3 });

    sink.state.rejecting = false;
    now = new Date(now.getTime() + 24 * 60 * 60 * 1000);
    expect(await sender.runOnce()).toEqual({ sent: 0, failed: 0, logged: 0 });
    expect(sink.received).toHaveLength(0);
    expect(await readMail(mail.id)).toMatchObject({ status: 'failed', attempts: 3 });
  });

  it('a mail inserted in a transaction that rolls back is never sent', async () => {
    await expect(
      testDb.database.db.transaction(async (tx) => {
        await tx.insert(schema.outbox).values({
          id: randomUUID(),
          recipient: 'bob@example.test',
          subject: 'Never',
          body: 'never sent',
          nextAttemptAt: now,
          createdAt: now,
        });
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');

    expect(await makeSender().runOnce()).toEqual({ sent: 0, failed: 0, logged: 0 });
    expect(sink.received).toHaveLength(0);
    expect(await testDb.database.db.select().from(schema.outbox)).toHaveLength(0);
  });

  it('without SMTP a mail is logged once, stays pending and is delivered once SMTP is configured', async () => {
    const mail = await insertMail();
    const lines: string[] = [];
    const logger: Logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const unconfigured = makeSender({ smtpUrl: undefined, logger });

    expect(await unconfigured.runOnce()).toEqual({ sent: 0, failed: 0, logged: 1 });
    expect(await unconfigured.runOnce()).toEqual({ sent: 0, failed: 0, logged: 0 });

    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e.mailId === mail.id);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 30, to: mail.recipient, subject: mail.subject });
    // The body carries a redeemable token: the log says where to read it instead.
    expect(lines.join('')).not.toContain('abc123');
    expect(logged[0]!.msg).toContain('GET /api/v1/outbox');
    expect(await readMail(mail.id)).toMatchObject({ status: 'pending', attempts: 0, loggedAt: now });
    expect(sink.received).toHaveLength(0);

    expect(await makeSender().runOnce()).toEqual({ sent: 1, failed: 0, logged: 0 });
    expect(sink.received).toHaveLength(1);
    expect(await readMail(mail.id)).toMatchObject({ status: 'sent' });
  });

  it('two senders running at once deliver each of 50 mails exactly once', async () => {
    const mails = [];
    for (let i = 0; i < 50; i++) mails.push(await insertMail({ recipient: `user${i}@example.test` }));
    const [a, b] = [makeSender({ batchSize: 5 }), makeSender({ batchSize: 5 })];

    const results = await Promise.all([a.runOnce(), b.runOnce(), a.runOnce(), b.runOnce()]);

    expect(results.reduce((total, r) => total + r.sent, 0)).toBe(50);
    const recipients = sink.received.flatMap((message) => message.to).sort();
    expect(recipients).toEqual(mails.map((mail) => mail.recipient).sort());
    const rows = await testDb.database.db.select().from(schema.outbox);
    expect(rows.every((row) => row.status === 'sent' && row.attempts === 1)).toBe(true);
  });
});
