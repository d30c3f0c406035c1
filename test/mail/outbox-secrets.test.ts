/**
 * No redeemable token at rest or in a log line (issue 6, point 8): a database dump once completed a
 * provider setup from an unsent mail. Pending and failed mail bodies are sealed with
 * ENCRYPTION_KEY; the operator reads them at GET /api/v1/outbox; a sent body keeps its tokens
 * blanked; without SMTP the log names each mail but never carries its body.
 */
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import { createLogger } from '../../src/logging.js';
import { createOutboxSender } from '../../src/mail/sender.js';
import { createEngine, createMailQueue } from '../../src/membership/index.js';
import { UNREADABLE_BODY } from '../../src/membership/mail.js';
import { SecretUnreadable } from '../../src/membership/secret-box.js';
import { startTestApp, SYSTEM_TOKEN, TEST_ENCRYPTION_KEY, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { createClient, invitedMember, must, setupProvider, uniqueEmail } from '../support/http-seed.js';

const TOKEN = /^inv_[\w-]{43}$/;

describeEachDriver('secrets in the outbox', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(() => t.close());

  const queue = () => createMailQueue({ db: t.testDb.database.db, encryptionKey: TEST_ENCRYPTION_KEY });

  /** Every row of every table, as a dump would hold them. */
  async function dump(): Promise<string> {
    const db = t.testDb.database.db;
    const tables = rowsOf(
      await db.execute(sql`select table_name from information_schema.tables where table_schema = current_schema()`),
    ).map((r) => String(r.table_name));
    const parts: string[] = [];
    for (const table of tables) parts.push(`${table}: ${jsonOf(rowsOf(await db.execute(sql.raw(`select * from "${table}"`))))}`);
    return parts.join('\n');
  }

  /** The outbox rows of `email`, read raw with SQL. */
  async function rawMails(email: string): Promise<Record<string, unknown>[]> {
    return rowsOf(await t.testDb.database.db.execute(sql`select * from outbox where recipient = ${email}`));
  }

  /** The token of the newest mail to `email`, as the operator reads it at GET /api/v1/outbox. */
  async function operatorReadsToken(email: string): Promise<string> {
    const outbox = must(
      await t.request('GET', `/api/v1/outbox?recipient=${encodeURIComponent(email)}`, { token: SYSTEM_TOKEN }),
      200,
      'read outbox',
    );
    const text = String(outbox.data[0]?.text ?? '');
    const token = /[?&]token=([^\s&]+)/.exec(text)?.[1];
    if (!token) throw new Error(`the operator reads no token for ${email}: ${text}`);
    return token;
  }

  /** Asserts that nothing token-shaped in `stored` is accepted by setup or invitation acceptance. */
  async function expectNothingRedeemable(stored: string): Promise<void> {
    // The engine itself (what /providers/setup and /invitations/accept call): HTTP rate limits on
    // failed attempts must not be what refuses these.
    for (const candidate of tokenShaped(stored)) {
      await expect(t.engine.completeProviderSetup({ token: candidate }), candidate).rejects.toThrow();
      await expect(t.engine.acceptInvitation({ token: candidate }), candidate).rejects.toThrow();
    }
  }

  /** Asserts `token` (nor its random part) appears nowhere in the database. */
  async function expectNotAtRest(token: string): Promise<void> {
    const everything = await dump();
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.slice('inv_'.length));
  }

  it('a pending provider setup mail holds no token in the database that completes the setup; the operator reads one that does', async () => {
    const adminEmail = uniqueEmail('setup');
    must(await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Sealed MSP', adminEmail } }), 201, 'create provider');

    const [row] = await rawMails(adminEmail);
    expect(row).toMatchObject({ status: 'pending' });
    expect(String(row!.body)).not.toContain('token=');
    await expectNothingRedeemable(jsonOf(row));

    const token = await operatorReadsToken(adminEmail);
    expect(token).toMatch(TOKEN);
    await expectNotAtRest(token);
    // The token the dump did not hold was live all along.
    expect((await t.request('POST', '/api/v1/providers/setup', { body: { token } })).status).toBe(200);
  });

  it('a pending member invitation holds no token in the database that accepts it; the operator reads one that does', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { email } = await invitedMember(t, org.id, p.adminToken);

    const [row] = await rawMails(email);
    expect(row).toMatchObject({ status: 'pending' });
    await expectNothingRedeemable(jsonOf(row));

    const token = await operatorReadsToken(email);
    await expectNotAtRest(token);
    expect((await t.request('POST', '/api/v1/invitations/accept', { body: { token } })).status).toBe(200);
  });

  it('a mail that failed for good holds no redeemable token; the operator can still read it and pass it on', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { email } = await invitedMember(t, org.id, p.adminToken);
    // Nothing listens on port 1: every attempt fails, and one attempt is all it gets.
    const sender = createOutboxSender({
      queue: queue(),
      smtpUrl: 'smtp://127.0.0.1:1',
      logger: pino({ level: 'silent' }),
      clock: () => t.clock.now,
      maxAttempts: 1,
    });
    try {
      expect((await sender.runOnce()).failed).toBeGreaterThanOrEqual(1);
    } finally {
      await sender.stop();
    }

    const [row] = await rawMails(email);
    expect(row).toMatchObject({ status: 'failed', attempts: 1 });
    await expectNothingRedeemable(jsonOf(row));
    const token = await operatorReadsToken(email);
    await expectNotAtRest(token);
    expect((await t.request('POST', '/api/v1/invitations/accept', { body: { token } })).status).toBe(200);
  });

  it('the sender opens a body only to send it, and a sent mail is kept with its token blanked', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { email } = await invitedMember(t, org.id, p.adminToken);
    const token = await operatorReadsToken(email);

    const q = queue();
    const claimed = await q.claimDue(new Date(t.clock.now.getTime() + 1000), { limit: 1000, leaseMs: 60_000 });
    const mail = claimed.find((m) => m.recipient === email)!;
    expect(mail.storedBody).not.toContain(token);
    expect(q.openBody(mail)).toContain(`/accept?token=${token}`);
    await q.markSent(mail, t.clock.now);

    const [row] = await rawMails(email);
    expect(row).toMatchObject({ status: 'sent' });
    expect(row!.body).toContain('/accept?token=(sent)');
    await expectNotAtRest(token);
  });

  it('without SMTP each mail is logged once by recipient and subject, pointing at GET /api/v1/outbox, and no line carries its token', async () => {
    const lines: string[] = [];
    const logger = createLogger(testConfig({ LOG_LEVEL: 'trace' }), { write: (line: string) => void lines.push(line) });
    const adminEmail = uniqueEmail('unsent');
    must(await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Unsent MSP', adminEmail } }), 201, 'create provider');
    const token = await operatorReadsToken(adminEmail);

    const sender = createOutboxSender({ queue: queue(), smtpUrl: undefined, logger, clock: () => t.clock.now, batchSize: 1000 });
    try {
      expect((await sender.runOnce()).logged).toBeGreaterThanOrEqual(1);
    } finally {
      await sender.stop();
    }

    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const notices = entries.filter((e) => e.to === adminEmail);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ level: 30, subject: 'Set up your Portico provider', msg: expect.stringContaining('GET /api/v1/outbox') });
    for (const line of lines) {
      expect(line).not.toContain(token);
      expect(line).not.toContain(token.slice('inv_'.length));
    }
  });

  it('with another ENCRYPTION_KEY pending mail cannot be read: the operator sees it marked unreadable, the sender cannot open it', async () => {
    const adminEmail = uniqueEmail('rekeyed');
    must(await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Rekeyed MSP', adminEmail } }), 201, 'create provider');
    const otherKey = 'a-different-encryption-key-0123456789abcdef0123';
    const rekeyed = createEngine({ db: t.testDb.database.db, clock: () => t.clock.now, publicUrl: 'http://portico.test', encryptionKey: otherKey });

    const [listed] = await rekeyed.listOutbox({ kind: 'system' }, { recipient: adminEmail });
    expect(listed).toMatchObject({ to: adminEmail, status: 'pending', text: UNREADABLE_BODY });
    const q = createMailQueue({ db: t.testDb.database.db, encryptionKey: otherKey });
    const claimed = await q.claimDue(new Date(t.clock.now.getTime() + 1000), { limit: 1000, leaseMs: 60_000 });
    const mail = claimed.find((m) => m.recipient === adminEmail)!;
    expect(() => q.openBody(mail)).toThrow(SecretUnreadable);
  });
});

/** Anything in `text` that could be a mailed token: link parameters, `xx_<43 base64url>`, and bare 43-character runs (also with the `inv_` prefix). */
function tokenShaped(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/token=([^\s&"\\]+)/g)) found.add(m[1]!);
  for (const m of text.matchAll(/[a-z]{2,5}_[\w-]{43}/g)) found.add(m[0]);
  for (const m of text.matchAll(/[\w-]{43,}/g)) {
    found.add(m[0]);
    for (let i = 0; i + 43 <= m[0].length; i += 43) found.add(`inv_${m[0].slice(i, i + 43)}`);
  }
  return [...found];
}

/** `db.execute` answers `{ rows }` on PGlite and an array on postgres.js. */
function rowsOf(result: unknown): Record<string, unknown>[] {
  return (Array.isArray(result) ? result : (result as { rows: Record<string, unknown>[] }).rows) as Record<string, unknown>[];
}

const jsonOf = (value: unknown) => JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
