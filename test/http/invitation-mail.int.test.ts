/**
 * Invitations end to end through a real SMTP server: the API writes mails to the outbox, the
 * outbox sender delivers them to smtp-server, and the token read from the received message's link
 * accepts the invitation. A refused invitation mails nothing.
 */
import { eq } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { createMailQueue } from '../../src/membership/index.js';
import { createOutboxSender, type OutboxSender } from '../../src/mail/sender.js';
import { startTestApp, SYSTEM_TOKEN, TEST_ENCRYPTION_KEY, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { countMails, createClient, expectProblem, must, setupProvider, uniqueEmail } from '../support/http-seed.js';
import { header, startSmtpSink, textOf, tokenInMail, type SmtpSink } from '../support/smtp-sink.js';

const PUBLIC_URL = 'http://portico.test';

describeEachDriver('invitation mail over SMTP', (driver) => {
  let t: TestApp;
  let sink: SmtpSink;
  let sender: OutboxSender;

  beforeAll(async () => {
    t = await startTestApp(driver);
    sink = await startSmtpSink();
    sender = createOutboxSender({
      queue: createMailQueue({ db: t.testDb.database.db, encryptionKey: TEST_ENCRYPTION_KEY }),
      smtpUrl: sink.url,
      from: 'Portico <no-reply@portico.test>',
      logger: pino({ level: 'silent' }),
      clock: () => t.clock.now,
    });
  });
  afterAll(async () => {
    await sender.stop();
    await sink.close();
    await t.close();
  });

  it('a member invitation delivered over SMTP carries a token that accepts it, and the member can then be confirmed', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p, { name: 'Contoso Mail' });
    const email = uniqueEmail('smtp-member');
    const invited = must(
      await t.request('POST', `/api/v1/organizations/${org.id}/members`, { token: p.adminToken, body: { emails: [email], role: 'user' } }),
      201,
      'invite',
    );
    const memberId = invited.invited[0].id as string;

    const run = await sender.runOnce();
    expect(run.failed).toBe(0);
    expect(run.sent).toBeGreaterThanOrEqual(1);
    const mails = sink.to(email);
    expect(mails).toHaveLength(1);
    const mail = mails[0]!;
    expect(mail.from).toBe('no-reply@portico.test');
    expect(header(mail.raw, 'Subject')).toBe('Join Contoso Mail on Portico');
    expect(textOf(mail.raw)).toContain('You have been invited to join the organization Contoso Mail.');
    const [row] = await t.testDb.database.db.select().from(schema.outbox).where(eq(schema.outbox.recipient, email));
    expect(row).toMatchObject({ status: 'sent', attempts: 1 });

    // The link line is longer than 76 characters, so it arrives quoted-printable: soft-broken, `=` as `=3D`.
    const token = tokenInMail(mail, PUBLIC_URL);
    expect(token).toMatch(/^inv_[\w-]{43}$/);
    const accepted = await t.request('POST', '/api/v1/invitations/accept', { body: { token, name: 'Mail Person' } });
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ user: { email, name: 'Mail Person' }, member: { id: memberId, status: 'accepted' } });

    const confirmed = await t.request('POST', `/api/v1/organizations/${org.id}/members/${memberId}/confirm`, { token: p.adminToken });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.status).toBe('confirmed');
    expect((await t.request('GET', `/api/v1/organizations/${org.id}`, { token: accepted.body.apiToken })).status).toBe(200);

    // The confirmation is mailed too.
    await sender.runOnce();
    expect(sink.to(email).map((m) => header(m.raw, 'Subject'))).toEqual(['Join Contoso Mail on Portico', 'You are confirmed in Contoso Mail']);
  });

  it('a provider setup mail delivered over SMTP carries the token that completes the setup', async () => {
    const adminEmail = uniqueEmail('smtp-admin');
    const created = must(
      await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Mailed MSP', adminEmail } }),
      201,
      'provider',
    );
    await sender.runOnce();
    const [mail] = sink.to(adminEmail);
    expect(mail).toBeDefined();
    expect(textOf(mail!.raw)).toContain(`${PUBLIC_URL}/providers/setup?token=`);
    const setup = await t.request('POST', '/api/v1/providers/setup', { body: { token: tokenInMail(mail!, PUBLIC_URL) } });
    expect(setup.status).toBe(200);
    expect(setup.body.provider).toMatchObject({ id: created.id, status: 'active' });
  });

  it('an invitation refused for want of seats sends no mail', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p, { seats: 1 });
    const seated = uniqueEmail('seated');
    const refused = uniqueEmail('refused');
    must(
      await t.request('POST', `/api/v1/organizations/${org.id}/members`, { token: p.adminToken, body: { emails: [seated], role: 'user' } }),
      201,
      'first invite',
    );
    expectProblem(
      await t.request('POST', `/api/v1/organizations/${org.id}/members`, { token: p.adminToken, body: { emails: [refused], role: 'user' } }),
      409,
      'organization.seat_limit',
    );
    await sender.runOnce();
    expect(sink.to(seated)).toHaveLength(1);
    expect(sink.to(refused)).toEqual([]);
    expect(await countMails(t, refused)).toBe(0);
  });
});
