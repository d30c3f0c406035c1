/**
 * Throttling through the real app: failed authentications (bearer tokens, SCIM keys, invitation
 * and setup tokens) per client address and per SCIM organization, and mails per recipient. The
 * counters live in the database, so two app instances on one database share them, and the
 * windows run on the injected clock.
 *
 * Seeds go through an unthrottled test app (test/support/app.ts); the requests under test go
 * through throttled instances of the same app over the same database and clock, from chosen
 * loopback source addresses (127.0.0.0/8), so each test has clients of its own.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { count, eq } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { openDatabase, schema, type Database } from '../../src/db/index.js';
import { clientKey } from '../../src/http/rate-limit.js';
import { createEngine } from '../../src/membership/index.js';
import { startTestApp, SYSTEM_TOKEN, TEST_ENCRYPTION_KEY, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { createClient, expectProblem, invitedMember, must, setupProvider, uniqueEmail } from '../support/http-seed.js';
import { CORE_USER, expectScimError, scimOrganization } from '../support/scim.js';

/** The documented defaults (README "Rate limits"): what operators get without setting anything. */
const LIMITS = testConfig().rateLimits;
const WINDOW_MS = LIMITS.authWindowSeconds * 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

type Response = Awaited<ReturnType<TestApp['request']>>;
interface RequestOptions {
  token?: string | undefined;
  body?: unknown;
  contentType?: string;
  /** The client's source address (any of 127.0.0.0/8); default 127.0.0.1. */
  from?: string;
}
interface Instance {
  request(method: string, path: string, options?: RequestOptions): Promise<Response>;
  close(): Promise<void>;
}

/** A throttled app instance over `database`, on the test app's clock, as main wires it. */
async function startInstance(t: TestApp, database: Database): Promise<Instance> {
  const engine = createEngine(
    {
      db: database.db,
      clock: () => t.clock.now,
      publicUrl: 'http://portico.test',
      encryptionKey: TEST_ENCRYPTION_KEY,
      limits: { mailsPerRecipient: LIMITS.mailsPerRecipient },
    },
    { systemToken: SYSTEM_TOKEN },
  );
  const app = createApp({
    engine,
    database,
    logger: pino({ level: 'silent' }),
    publicUrl: 'http://portico.test',
    bodyLimit: '100kb',
    rateLimits: LIMITS,
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    request: (method, path, options = {}) =>
      new Promise((resolve, reject) => {
        const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
        const headers: Record<string, string> = {};
        if (options.token) headers.authorization = `Bearer ${options.token}`;
        if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
        const req = httpRequest(
          { host: '127.0.0.1', port, method, path, headers, localAddress: options.from ?? '127.0.0.1', agent: false },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => {
              let body: unknown = text;
              try {
                body = text ? JSON.parse(text) : undefined;
              } catch {
                /* not JSON: keep the text */
              }
              const fetched = new Headers();
              for (const [name, value] of Object.entries(res.headers)) {
                if (value !== undefined) fetched.set(name, Array.isArray(value) ? value.join(', ') : value);
              }
              resolve({ status: res.statusCode!, body, headers: fetched });
            });
          },
        );
        req.on('error', reject);
        req.end(payload);
      }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function expectThrottled(res: Response, retryAfter: number = LIMITS.authWindowSeconds): void {
  expectProblem(res, 429, 'rate.limited');
  expect(res.headers.get('retry-after')).toBe(String(retryAfter));
}

describeEachDriver('rate limits', (driver) => {
  let t: TestApp;
  let api: Instance;
  beforeAll(async () => {
    t = await startTestApp(driver);
    api = await startInstance(t, t.testDb.database);
  });
  afterAll(async () => {
    await api?.close();
    await t?.close();
  });
  // Every window of earlier tests has passed: each test starts with whole budgets.
  beforeEach(() => t.clock.advance(DAY));

  const outboxCount = async (email: string) => {
    const [row] = await t.testDb.database.db.select({ n: count() }).from(schema.outbox).where(eq(schema.outbox.recipient, email));
    return row!.n;
  };

  it('after 10 failed bearer tokens a client gets 429 with Retry-After for every token, a valid one included, until the window passes', async () => {
    const p = await setupProvider(t);
    const client = '127.0.1.1';
    for (let i = 0; i < LIMITS.authFailuresPerClient; i += 1) {
      expectProblem(await api.request('GET', '/api/v1/me', { token: `pt_wrong${i}`, from: client }), 401, 'auth.unauthenticated');
    }
    expectThrottled(await api.request('GET', '/api/v1/me', { token: 'pt_wrong', from: client }));
    expectThrottled(await api.request('GET', '/api/v1/me', { token: p.adminToken, from: client }));
    // Another client is not affected.
    expect((await api.request('GET', '/api/v1/me', { token: p.adminToken, from: '127.0.1.2' })).status).toBe(200);

    t.clock.advance(WINDOW_MS / 3);
    expectThrottled(await api.request('GET', '/api/v1/me', { token: p.adminToken, from: client }), (2 * LIMITS.authWindowSeconds) / 3);
    t.clock.advance((2 * WINDOW_MS) / 3);
    expect((await api.request('GET', '/api/v1/me', { token: p.adminToken, from: client })).status).toBe(200);
    expectProblem(await api.request('GET', '/api/v1/me', { token: 'pt_wrong', from: client }), 401, 'auth.unauthenticated');
  });

  it('successful authentications cost nothing: only failures spend the budget', async () => {
    const p = await setupProvider(t);
    const client = '127.0.2.1';
    for (let i = 0; i < LIMITS.authFailuresPerClient - 1; i += 1) {
      expect((await api.request('GET', '/api/v1/me', { token: 'pt_wrong', from: client })).status).toBe(401);
    }
    for (let i = 0; i < 2 * LIMITS.authFailuresPerClient; i += 1) {
      expect((await api.request('GET', '/api/v1/me', { token: p.adminToken, from: client })).status).toBe(200);
    }
    // Requests without credentials are refused but are no guess.
    expect((await api.request('GET', '/api/v1/me', { from: client })).status).toBe(401);
    expect((await api.request('GET', '/api/v1/me', { token: 'pt_wrong', from: client })).status).toBe(401);
    expectThrottled(await api.request('GET', '/api/v1/me', { token: p.adminToken, from: client }));
  });

  it('after 10 failed SCIM keys a client gets a SCIM 429 with Retry-After, the right key included, until the window passes', async () => {
    const p = await setupProvider(t);
    const org = await scimOrganization(t, { pid: p.pid, adminToken: p.adminToken });
    const client = '127.0.3.1';
    for (let i = 0; i < LIMITS.authFailuresPerClient; i += 1) {
      expectScimError(await api.request('GET', `/scim/v2/${org.oid}/Users`, { token: `scim_wrong${i}`, from: client }), 401);
    }
    for (const token of ['scim_wrong', org.token]) {
      const throttled = await api.request('GET', `/scim/v2/${org.oid}/Users`, { token, from: client });
      expectScimError(throttled, 429);
      expect(throttled.headers.get('retry-after')).toBe(String(LIMITS.authWindowSeconds));
    }
    expect((await api.request('GET', `/scim/v2/${org.oid}/Users`, { token: org.token, from: '127.0.3.2' })).status).toBe(200);

    t.clock.advance(WINDOW_MS);
    expect((await api.request('GET', `/scim/v2/${org.oid}/Users`, { token: org.token, from: client })).status).toBe(200);
  });

  it("failed SCIM keys from many clients add up per organization: past 50 the organization's endpoint answers 429 to everyone, other organizations' not", async () => {
    const p = await setupProvider(t);
    const org = await scimOrganization(t, { pid: p.pid, adminToken: p.adminToken });
    const other = await scimOrganization(t, { pid: p.pid, adminToken: p.adminToken });
    const clients = Math.ceil(LIMITS.scimFailuresPerOrganization / LIMITS.authFailuresPerClient);
    let failures = 0;
    for (let c = 0; c < clients; c += 1) {
      for (let i = 0; i < LIMITS.authFailuresPerClient && failures < LIMITS.scimFailuresPerOrganization; i += 1, failures += 1) {
        expect((await api.request('GET', `/scim/v2/${org.oid}/Users`, { token: 'scim_wrong', from: `127.0.4.${c + 1}` })).status).toBe(401);
      }
    }
    const fresh = '127.0.4.200';
    expectScimError(await api.request('GET', `/scim/v2/${org.oid}/Users`, { token: org.token, from: fresh }), 429);
    expect((await api.request('GET', `/scim/v2/${other.oid}/Users`, { token: other.token, from: fresh })).status).toBe(200);
  });

  it('after 10 invalid invitation tokens a client gets 429 at POST /invitations/accept, with a valid token too, until the window passes', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { email } = await invitedMember(t, org.id, p.adminToken);
    const token = await t.mailedToken(email);
    const client = '127.0.5.1';
    for (let i = 0; i < LIMITS.authFailuresPerClient; i += 1) {
      expectProblem(await api.request('POST', '/api/v1/invitations/accept', { body: { token: `wrong${i}` }, from: client }), 400, 'invitation.invalid');
    }
    expectThrottled(await api.request('POST', '/api/v1/invitations/accept', { body: { token }, from: client }));

    t.clock.advance(WINDOW_MS);
    expect((await api.request('POST', '/api/v1/invitations/accept', { body: { token }, from: client })).status).toBe(200);
  });

  it('after 10 invalid setup tokens a client gets 429 at POST /providers/setup, with a valid token too, until the window passes', async () => {
    const adminEmail = uniqueEmail('provider-admin');
    must(await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Throttled MSP', adminEmail } }), 201, 'create provider');
    const token = await t.mailedToken(adminEmail);
    const client = '127.0.6.1';
    for (let i = 0; i < LIMITS.authFailuresPerClient; i += 1) {
      expectProblem(await api.request('POST', '/api/v1/providers/setup', { body: { token: `wrong${i}` }, from: client }), 400, 'invitation.invalid');
    }
    expectThrottled(await api.request('POST', '/api/v1/providers/setup', { body: { token }, from: client }));
    // The invitation budget is another kind's: this client may still accept invitations.
    expectProblem(await api.request('POST', '/api/v1/invitations/accept', { body: { token: 'wrong' }, from: client }), 400, 'invitation.invalid');

    t.clock.advance(WINDOW_MS);
    expect((await api.request('POST', '/api/v1/providers/setup', { body: { token }, from: client })).status).toBe(200);
  });

  it('21 re-invitations of one address mail it 10 times; the rest answer 429 with Retry-After and change nothing', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const email = uniqueEmail('reinvited');
    const invited = must(
      await api.request('POST', `/api/v1/organizations/${org.id}/members`, { token: p.adminToken, body: { emails: [email], role: 'user' } }),
      201,
      'invite',
    );
    const memberId = invited.invited[0].id as string;
    const statuses: number[] = [];
    for (let i = 0; i < 20; i += 1) {
      const res = await api.request('POST', `/api/v1/organizations/${org.id}/members/${memberId}/reinvite`, { token: p.adminToken });
      statuses.push(res.status);
      if (res.status === 429) expectThrottled(res, 3600);
    }
    expect(statuses).toEqual([...Array(LIMITS.mailsPerRecipient - 1).fill(200), ...Array(21 - LIMITS.mailsPerRecipient).fill(429)]);
    expect(await outboxCount(email)).toBe(LIMITS.mailsPerRecipient);
    // The refused re-invitations replaced no token: the last one mailed still works.
    expect((await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email) } })).status).toBe(200);
  });

  it('the mail cap is per recipient and hourly: a bulk invite of 20 addresses mails each once, and a capped address is mailed again an hour later', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p, { seats: 30 });
    const emails = Array.from({ length: 20 }, () => uniqueEmail('bulk'));
    const bulk = must(
      await api.request('POST', `/api/v1/organizations/${org.id}/members`, { token: p.adminToken, body: { emails, role: 'user' } }),
      201,
      'bulk invite',
    );
    expect(bulk.invited).toHaveLength(20);
    for (const email of emails) expect(await outboxCount(email)).toBe(1);

    const [first, second] = bulk.invited as { id: string }[];
    const reinvite = (id: string) => api.request('POST', `/api/v1/organizations/${org.id}/members/${id}/reinvite`, { token: p.adminToken });
    for (let i = 1; i < LIMITS.mailsPerRecipient; i += 1) expect((await reinvite(first!.id)).status).toBe(200);
    expectThrottled(await reinvite(first!.id), 3600);
    expect((await reinvite(second!.id)).status).toBe(200);

    t.clock.advance(HOUR);
    expect((await reinvite(first!.id)).status).toBe(200);
    expect(await outboxCount(emails[0]!)).toBe(LIMITS.mailsPerRecipient + 1);
  });

  it('SCIM answers a mail refused by the cap with a SCIM 429', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const email = uniqueEmail('scim-capped');
    const { memberId } = await invitedMember(t, org.id, p.adminToken, { email });
    // Mails of the unthrottled seeding app are not counted: spend the budget here.
    for (let i = 0; i < LIMITS.mailsPerRecipient; i += 1) {
      expect((await api.request('POST', `/api/v1/organizations/${org.id}/members/${memberId}/reinvite`, { token: p.adminToken })).status).toBe(200);
    }
    const scim = await scimOrganization(t, { pid: p.pid, adminToken: p.adminToken });
    const created = await api.request('POST', `/scim/v2/${scim.oid}/Users`, {
      token: scim.token,
      contentType: 'application/scim+json',
      body: { schemas: [CORE_USER], userName: email, emails: [{ value: email, primary: true }], active: true },
    });
    expectScimError(created, 429);
    expect(created.headers.get('retry-after')).toBe('3600');
  });

  it('two instances on one database share the budgets: concurrent failures and mails through either add up', async () => {
    const second = driver === 'postgres' ? await openDatabase({ databaseUrl: t.testDb.url, dataDir: 'memory://' }) : undefined;
    const other = await startInstance(t, second ?? t.testDb.database);
    try {
      const p = await setupProvider(t);
      const client = '127.0.7.1';
      // All at once, half through each instance: the upsert loses no count.
      const failures = await Promise.all(
        Array.from({ length: LIMITS.authFailuresPerClient }, (_, i) =>
          (i % 2 === 0 ? api : other).request('GET', '/api/v1/me', { token: 'pt_wrong', from: client }),
        ),
      );
      expect(failures.map((r) => r.status)).toEqual(Array(LIMITS.authFailuresPerClient).fill(401));
      expectThrottled(await api.request('GET', '/api/v1/me', { token: p.adminToken, from: client }));
      expectThrottled(await other.request('GET', '/api/v1/me', { token: p.adminToken, from: client }));

      const org = await createClient(t, p);
      const email = uniqueEmail('shared');
      const invited = must(
        await other.request('POST', `/api/v1/organizations/${org.id}/members`, { token: p.adminToken, body: { emails: [email], role: 'user' } }),
        201,
        'invite',
      );
      const memberId = invited.invited[0].id as string;
      const statuses: number[] = [];
      for (let i = 0; i < LIMITS.mailsPerRecipient; i += 1) {
        const res = await (i % 2 === 0 ? api : other).request('POST', `/api/v1/organizations/${org.id}/members/${memberId}/reinvite`, { token: p.adminToken });
        statuses.push(res.status);
      }
      expect(statuses).toEqual([...Array(LIMITS.mailsPerRecipient - 1).fill(200), 429]);
      expect(await outboxCount(email)).toBe(LIMITS.mailsPerRecipient);
    } finally {
      await other.close();
      await second?.close();
    }
  });

  it('expired counters are pruned', async () => {
    await api.request('GET', '/api/v1/me', { token: 'pt_wrong', from: '127.0.8.1' });
    const rows = async () => (await t.testDb.database.db.select({ n: count() }).from(schema.rateLimits))[0]!.n;
    expect(await rows()).toBeGreaterThan(0);
    t.clock.advance(DAY);
    await t.engine.pruneRateLimits();
    expect(await rows()).toBe(0);
  });
});

describe('client keys', () => {
  it('count IPv4 clients per address (IPv4-mapped too) and IPv6 clients per /64', () => {
    expect(clientKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:0db8:0001:0002:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey(undefined)).toBe('unknown');
  });
});
