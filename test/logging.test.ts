/**
 * No secret in a log line: mailed tokens in request URLs (a link opened in a browser lands in the
 * request log), and bound SQL parameters of failed queries (emails, names, token hashes), which
 * drizzle's DrizzleQueryError carries in its `params` and its message. And lines a person and a log
 * store can read: one short line per request, probes at debug, no key twice in a JSON line, pretty
 * only when asked for (a terminal).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testConfig } from '../src/config.js';
import { createLogger, redactUrl, requestLogLevel, serializeError, serializeResponse, tenantOf } from '../src/logging.js';
import { createOutboxSender } from '../src/mail/sender.js';
import { createMailQueue } from '../src/membership/index.js';
import { hashSecret } from '../src/membership/secrets.js';
import { startTestApp, SYSTEM_TOKEN, TEST_ENCRYPTION_KEY, type TestApp } from './support/app.js';
import { describeEachDriver, openTestDatabase, type TestDatabase } from './support/db.js';
import { createClient, must, setupProvider, uniqueEmail } from './support/http-seed.js';

type Line = Record<string, any>;

/**
 * The keys that occur twice in one object of a JSON text, with their paths. JSON.parse keeps the
 * last of them silently; log stores (Elasticsearch, Loki's JSON parser, BigQuery) reject or
 * mangle the line.
 */
function duplicateKeys(text: string): string[] {
  const found: string[] = [];
  let i = 0;
  const ws = () => {
    while (/\s/.test(text[i] ?? '')) i += 1;
  };
  const str = (): string => {
    const start = i;
    i += 1;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i += 1;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i += 1;
      const keys = new Set<string>();
      ws();
      if (text[i] === '}') return void (i += 1);
      for (;;) {
        ws();
        const key = str();
        if (keys.has(key)) found.push(`${path}${key}`);
        keys.add(key);
        ws();
        i += 1; // :
        value(`${path}${key}.`);
        ws();
        if (text[i++] === '}') return;
      }
    }
    if (c === '[') {
      i += 1;
      ws();
      if (text[i] === ']') return void (i += 1);
      for (let n = 0; ; n += 1) {
        value(`${path}${n}.`);
        ws();
        if (text[i++] === ']') return;
      }
    }
    if (c === '"') return void str();
    while (i < text.length && !/[,\]}\s]/.test(text[i]!)) i += 1;
  };
  JSON.parse(text); // well-formed first
  value('');
  return found;
}

it('duplicateKeys finds a key twice in one object, at any depth, and nothing else', () => {
  expect(duplicateKeys('{"a":1,"b":{"a":2,"c":[{"x":"}\\"","x":1}]},"a":3}')).toEqual(['b.c.0.x', 'a']);
  expect(duplicateKeys('{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}],"d":null,"e":"a,a"}')).toEqual([]);
});

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
    expect(serializeResponse(res)).toMatchObject({ location: 'https://app.example/return?code=[redacted]&next=%2F' });
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

  it('a mailed link opened in a browser is logged without its token, and no header (a Referer carries the link) is logged', async () => {
    await t.request('GET', '/accept?token=secret-token-value&lang=en');
    await t.request('GET', '/api/v1/nothing', { headers: { referer: 'http://portico.test/accept?token=secret-token-value' } });

    expect(log.raw.length).toBeGreaterThanOrEqual(2);
    for (const line of log.raw) expect(line).not.toContain('secret-token-value');
    const opened = log.entries().find((e) => e.req?.url?.startsWith('/accept'));
    expect(opened?.req).toEqual({ id: expect.any(String), method: 'GET', url: '/accept?token=[redacted]&lang=en' });
    const next = log.entries().find((e) => e.req?.url === '/api/v1/nothing');
    expect(next?.req).not.toHaveProperty('headers');
  });

  it('a request is one short line: request id, method, URL, status, time and the tenant of its path', async () => {
    const p = await setupProvider(t);
    const { id: oid } = await createClient(t, p);
    log.raw.length = 0;
    const res = await t.request('GET', `/api/v1/providers/${p.pid}?x=1`, { token: p.adminToken, headers: { 'x-request-id': 'req-short-line' } });
    expect(res.status).toBe(400);
    await t.request('GET', `/api/v1/organizations/${oid}/members`, { token: p.adminToken });

    const line = log.entries().find((e) => e.req?.id === 'req-short-line' && e.res);
    expect(line).toEqual({
      level: 30,
      time: expect.any(Number),
      pid: expect.any(Number),
      hostname: expect.any(String),
      req: { id: 'req-short-line', method: 'GET', url: `/api/v1/providers/${p.pid}?x=1` },
      providerId: p.pid,
      res: { statusCode: 400 },
      responseTime: expect.any(Number),
      msg: 'request completed',
    });
    const raw = log.raw.find((l) => l.includes('req-short-line'))!;
    expect(raw.length, raw).toBeLessThan(400);
    expect(log.entries().find((e) => e.req?.url === `/api/v1/organizations/${oid}/members`)).toMatchObject({
      organizationId: oid,
      res: { statusCode: 200 },
    });
    expect(log.raw.join('\n')).not.toContain(p.adminToken);
  });

  it('health, readiness and metrics probes write no line at info', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/healthz?probe=k8s']) expect((await t.request('GET', path)).status).toBe(200);
    expect(log.entries().filter((e) => e.req)).toEqual([]);
  });

  it('no request line, error line or mail line holds a key twice', async () => {
    const adminEmail = uniqueEmail('dupkeys');
    must(await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Dup MSP', adminEmail } }), 201, 'create provider');
    await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 1 } });
    await t.request('GET', '/api/v1/me');
    await t.request('GET', `/scim/v2/00000000-0000-4000-8000-000000000000/Users`);
    // The sender as main.ts wires it: given the process logger, it names its own component.
    const logger = createLogger(testConfig({ LOG_LEVEL: 'info' }), log.stream);
    const sender = createOutboxSender({
      queue: createMailQueue({ db: t.testDb.database.db, encryptionKey: TEST_ENCRYPTION_KEY }),
      logger,
      clock: () => t.clock.now,
      batchSize: 1000,
    });
    try {
      expect((await sender.runOnce()).logged).toBeGreaterThanOrEqual(1);
    } finally {
      await sender.stop();
    }
    const mailLine = log.entries().find((e) => e.to === adminEmail);
    expect(mailLine).toMatchObject({ component: 'mail' });
    expect(log.entries().filter((e) => e.res).length).toBeGreaterThanOrEqual(4);
    for (const line of log.raw) expect(duplicateKeys(line), line).toEqual([]);
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
    for (const line of log.raw) expect(duplicateKeys(line), line).toEqual([]);
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

describe('log levels, tenants and output format', () => {
  const request = (url: string) => ({ url, originalUrl: url }) as unknown as IncomingMessage;
  const response = (statusCode: number) => ({ statusCode }) as ServerResponse;

  it('probes go to debug whatever they answer; 5xx to error; everything else to info', () => {
    for (const url of ['/healthz', '/readyz', '/metrics', '/readyz?x=1']) {
      expect(requestLogLevel(request(url), response(200))).toBe('debug');
      expect(requestLogLevel(request(url), response(503))).toBe('debug');
    }
    expect(requestLogLevel(request('/api/v1/me'), response(401))).toBe('info');
    expect(requestLogLevel(request('/api/v1/me'), response(500))).toBe('error');
    expect(requestLogLevel(request('/healthz/extra'), response(404))).toBe('info');
  });

  it('the tenant is the organization or provider id of the path, and only an id-shaped one', () => {
    const oid = '0b6f3f8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
    const pid = '7d0e9c1a-2b3c-4d5e-9f60-718293a4b5c6';
    expect(tenantOf(request(`/api/v1/organizations/${oid}/members?status=invited`))).toEqual({ organizationId: oid });
    expect(tenantOf(request(`/api/v1/providers/${pid}/clients/${oid}`))).toEqual({ providerId: pid, organizationId: oid });
    expect(tenantOf(request(`/scim/v2/${oid}/Users`))).toEqual({ organizationId: oid });
    expect(tenantOf(request(`/api/v1/providers/${pid}`))).toEqual({ providerId: pid });
    expect(tenantOf(request('/api/v1/providers/setup'))).toEqual({});
    expect(tenantOf(request('/api/v1/me'))).toEqual({});
  });

  it('is JSON on a pipe and pino-pretty lines when asked for (a terminal)', () => {
    const script = (pretty: boolean) =>
      `import { createLogger } from './src/logging.ts';
       const logger = createLogger({ logLevel: 'info' }, undefined, { pretty: ${pretty} });
       logger.info({ req: { id: 'r1', method: 'GET', url: '/api/v1/me' }, res: { statusCode: 200 }, responseTime: 3 }, 'request completed');
       logger.child({ component: 'mail' }).info('mail not sent');
       logger.flush();`;
    const run = (pretty: boolean) =>
      spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(pretty)], { encoding: 'utf8', timeout: 20_000 });
    const json = run(false);
    expect(json.status, json.stderr).toBe(0);
    expect(json.stdout.trim().split('\n').map((l) => JSON.parse(l).msg)).toEqual(['request completed', 'mail not sent']);

    const pretty = run(true);
    expect(pretty.status, pretty.stderr).toBe(0);
    const lines = pretty.stdout.replace(/\x1b\[[0-9;]*m/g, '').trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[?\d\d:\d\d:\d\d\.\d{3}\]? INFO.*GET \/api\/v1\/me 200 3ms request completed \(req r1\)$/);
    expect(lines[1]).toMatch(/INFO.*\[mail\] mail not sent$/);
  });
});
