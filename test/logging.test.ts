/**
 * No secret in a log line: mailed tokens in request URLs (a link opened in a browser lands in the
 * request log), and bound SQL parameters of failed queries (emails, names, token hashes), which
 * drizzle's DrizzleQueryError carries in its `params` and its message.
 */
import { randomBytes } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testConfig } from '../src/config.js';
import { createLogger, redactUrl, serializeError, serializeResponse } from '../src/logging.js';
import { hashSecret } from '../src/membership/secrets.js';
import { startTestApp, type TestApp } from './support/app.js';
import { describeEachDriver, openTestDatabase, type TestDatabase } from './support/db.js';

type Line = Record<string, any>;

function captureLines() {
  const raw: string[] = [];
  return {
    raw,
    stream: { write: (line: string) => void raw.push(line) },
    entries: (): Line[] => raw.map((line) => JSON.parse(line) as Line),
  };
}

describe('redactUrl', () => {
  it('redacts the values of secret-looking query parameters and keeps the rest of the URL', () => {
    expect(redactUrl('/accept?token=inv_abc')).toBe('/accept?token=[redacted]');
    expect(redactUrl('/sso/return?code=abc&state=xyz&returnTo=%2Fhome')).toBe('/sso/return?code=[redacted]&state=[redacted]&returnTo=%2Fhome');
    expect(redactUrl('/api/v1/outbox?recipient=a%40b.test')).toBe('/api/v1/outbox?recipient=a%40b.test');
    expect(redactUrl('/x?apiKey=1&client_secret=2&password=3&continuationToken=4&page=5')).toBe(
      '/x?apiKey=[redacted]&client_secret=[redacted]&password=[redacted]&continuationToken=[redacted]&page=5',
    );
    expect(redactUrl('http://portico.test/providers/setup?%74oken=inv_abc#done')).toBe('http://portico.test/providers/setup?%74oken=[redacted]#done');
    expect(redactUrl('/healthz')).toBe('/healthz');
    expect(redactUrl('/accept?token')).toBe('/accept?token');
  });

  it('redacts a one-time code in a redirect’s Location without touching the response itself', () => {
    const res = new ServerResponse(new IncomingMessage(new Socket()));
    res.setHeader('location', 'https://app.example/return?code=one-time-code&next=%2F');
    expect(serializeResponse(res)).toMatchObject({ headers: { location: 'https://app.example/return?code=[redacted]&next=%2F' } });
    expect(res.getHeader('location')).toBe('https://app.example/return?code=one-time-code&next=%2F');
  });
});

describeEachDriver('request logs', (driver) => {
  const log = captureLines();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver, { logStream: log.stream });
  });
  afterAll(() => t.close());
  beforeEach(() => {
    log.raw.length = 0;
  });

  it('a mailed link opened in a browser is logged without its token: URL, parsed query and the Referer of the next request', async () => {
    await t.request('GET', '/accept?token=secret-token-value&lang=en');
    await t.request('GET', '/healthz', { headers: { referer: 'http://portico.test/accept?token=secret-token-value' } });

    expect(log.raw.length).toBeGreaterThanOrEqual(2);
    for (const line of log.raw) expect(line).not.toContain('secret-token-value');
    const opened = log.entries().find((e) => e.req?.url?.startsWith('/accept'));
    expect(opened?.req).toMatchObject({ url: '/accept?token=[redacted]&lang=en', query: { token: '[redacted]', lang: 'en' } });
    const next = log.entries().find((e) => e.req?.url === '/healthz');
    expect(next?.req.headers.referer).toBe('http://portico.test/accept?token=[redacted]');
  });

  it('an SQL error logged by the error handler carries the failed query but none of its bound parameters', async () => {
    const token = `inv_${randomBytes(32).toString('base64url')}`;
    // A broken schema makes the lookup of the invitation by its token hash fail in SQL.
    await t.testDb.database.db.execute(sql`alter table invitations rename column token_hash to token_hash_gone`);
    try {
      const res = await t.request('POST', '/api/v1/invitations/accept', { body: { token, name: 'Zebulon Quartermaine' } });
      expect(res.status).toBe(500);
    } finally {
      await t.testDb.database.db.execute(sql`alter table invitations rename column token_hash_gone to token_hash`);
    }

    const failure = log.entries().find((e) => e.err);
    expect(failure, 'the error handler logs the failure').toBeDefined();
    expect(failure!.err.message).toMatch(/Failed query: .*token_hash/s);
    expect(failure!.err.message).toContain('params: [redacted]');
    const line = log.raw.find((l) => l.includes('"err"'))!;
    expect(line).not.toContain(hashSecret(token));
    expect(line).not.toContain(token);
    expect(line).not.toContain('Zebulon');
  });
});

describeEachDriver('the err serializer', (driver) => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await openTestDatabase(driver);
  });
  afterAll(() => testDb.close());

  /** The error a query with `values` bound to it fails with. */
  async function failingQuery(query: ReturnType<typeof sql>): Promise<Error> {
    try {
      await testDb.database.db.execute(query);
    } catch (error) {
      return error as Error;
    }
    throw new Error('the query did not fail');
  }

  it('drops bound values from a DrizzleQueryError, its message and its cause, even when Postgres echoes one', async () => {
    const email = 'alice.secret@example.test';
    // Postgres quotes the bad value in its message: invalid input syntax for type uuid: "…".
    const error = await failingQuery(sql`select id from members where id = ${email}::uuid and email = ${'Bob Loblaw'}`);
    expect(error.constructor.name).toBe('DrizzleQueryError');
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error)) + String(error.cause)).toContain(email);

    const serialized = serializeError(error);
    const text = JSON.stringify(serialized);
    expect(text).not.toContain(email);
    expect(text).not.toContain('Bob Loblaw');
    expect(serialized).toMatchObject({ type: 'DrizzleQueryError', query: expect.stringContaining('select id from members') });
    expect(serialized.message).toContain('params: [redacted]');
    expect(serialized.message).toContain('invalid input syntax for type uuid');
    expect(serialized).not.toHaveProperty('params');
  });

  it('is the logger’s: a failed query logged outside a request carries no bound value either', async () => {
    const lines: string[] = [];
    const logger = createLogger(testConfig({ LOG_LEVEL: 'info' }), { write: (line: string) => void lines.push(line) });
    const hash = hashSecret('inv_some-token');
    const error = await failingQuery(sql`select * from invitations_gone where token_hash = ${hash}`);
    logger.error({ err: error }, 'outbox run failed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('invitations_gone');
    expect(lines[0]).not.toContain(hash);
  });

  it('drops value-carrying fields (postgres.js `parameters`, Postgres `detail`) along the cause chain, and leaves other errors as they are', () => {
    const driverError = Object.assign(new Error('duplicate key value violates unique constraint "members_org_email_key"'), {
      code: '23505',
      detail: 'Key (organization_id, lower(email))=(…, carol@example.test) already exists.',
      parameters: ['Carol@Example.test'],
    });
    for (const error of [driverError, new Error('could not invite', { cause: driverError })]) {
      const serialized = serializeError(error);
      const text = JSON.stringify(serialized);
      expect(text).not.toMatch(/carol@example\.test/i);
      expect(text).toContain('members_org_email_key');
    }
    expect(serializeError(driverError)).toMatchObject({ code: '23505' });

    const plain = new TypeError('x is not a function');
    expect(serializeError(plain)).toMatchObject({ type: 'TypeError', message: 'x is not a function', stack: plain.stack });
    expect(serializeError('not an error')).toBe('not an error');
  });
});
