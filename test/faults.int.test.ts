/**
 * A failing database fails the request, never the process (issue 6, point 1). On real PostgreSQL,
 * the app in this process reaches its database through a TCP proxy the test can cut: its backends
 * are terminated mid-burst (`pg_terminate_backend`, as a failover or an operator does), and its
 * connections are refused and then allowed again. Every answer is a success or a 503 in the
 * protocol's own error format, nothing reaches the process's last-resort handlers, every
 * acknowledged write is there afterwards, and /readyz tracks the outage and recovers without a
 * restart.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Conflict, isDatabaseUnavailable } from '../src/membership/index.js';
import { startTestApp, type TestApp } from './support/app.js';
import { postgresAvailable, TEST_DATABASE_URL } from './support/db.js';
import { createClient, expectProblem, setupProvider, type SeededProvider } from './support/http-seed.js';
import {
  CORE_USER,
  expectCreated,
  expectScim,
  expectScimError,
  scimOrganization,
  uniqueEmail,
  type ScimOrg,
  type ScimResponse,
} from './support/scim.js';

/** A TCP proxy in front of PostgreSQL that can refuse connections (and drop open ones) and allow them again. */
interface FaultProxy {
  /** `direct` with its host and port replaced by the proxy's. */
  route(direct: string): string;
  refuse(): Promise<void>;
  allow(): Promise<void>;
  close(): Promise<void>;
}

async function startProxy(target: URL): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(Number(target.port || 5432), target.hostname);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', drop).on('close', drop);
        }
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      // The same port again after a refusal: the app's pool keeps the URL it was given.
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const refuse = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  await listen();
  return {
    route(direct) {
      const url = new URL(direct);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    refuse,
    allow: listen,
    close: refuse,
  };
}

/** What reached the process's last-resort handlers while the faults ran; a crash in production. */
const escaped: unknown[] = [];
const record = (error: unknown) => void escaped.push(error);

/** An outage in SCIM: 503 with the RFC 7644 §3.12 Error body and a Retry-After. */
function expectScimUnavailable(res: ScimResponse): void {
  expectScimError(res, 503);
  expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
}

/** An outage in /api/v1: a 503 problem `service.unavailable` with a Retry-After. */
function expectApiUnavailable(res: Awaited<ReturnType<TestApp['request']>>): void {
  expectProblem(res, 503, 'service.unavailable');
  expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
}

describe('telling a database outage from a failed statement', () => {
  it('names a lost or refused connection, through the wrappers drivers add, and nothing else', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const terminated = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    const wrapped = (cause: unknown) => new Error('Failed query: select 1', { cause });
    expect(isDatabaseUnavailable(refused)).toBe(true);
    expect(isDatabaseUnavailable(wrapped(terminated))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('connection failure'), { code: '08006' }))).toBe(true);
    // Node's dual-stack connect reports every address it tried.
    expect(isDatabaseUnavailable(new AggregateError([refused], 'connect failed'))).toBe(true);
    // PGlite 0.5.16 has no connection; a query after close() fails with this message alone (measured).
    expect(isDatabaseUnavailable(wrapped(new Error('PGlite is closed')))).toBe(true);

    expect(isDatabaseUnavailable(wrapped(Object.assign(new Error('duplicate key'), { code: '23505' })))).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }))).toBe(false);
    expect(isDatabaseUnavailable(new Conflict('A member with this email already exists'))).toBe(false);
    expect(isDatabaseUnavailable(new TypeError("Cannot read properties of undefined (reading 'status')"))).toBe(false);
  });
});

describe('the PostgreSQL driver', () => {
  it('carries the guard that settles a write scheduled before its connection closed (patches/, applied on install)', () => {
    // postgres.js 3.4.7 throws from an immediate, past every caller, when a small write fires after
    // the socket closed (porsager/postgres#1154, #1208); patch-package applies our guard at npm ci.
    // The package exports neither its package.json nor its sources: from its CommonJS entry, cjs/src/index.js.
    const root = join(dirname(createRequire(import.meta.url).resolve('postgres')), '..', '..');
    for (const entry of ['src/connection.js', 'cjs/src/connection.js']) {
      const source = readFileSync(join(root, entry), 'utf8');
      expect(source, entry).toMatch(/function nextWrite\(fn\) \{\n\s+\/\/ A write scheduled before the connection closed[\s\S]{0,300}if \(!socket\)/);
    }
  });
});

const SCIM_BURST = 200;
const API_BURST = 100;

describe.skipIf(!postgresAvailable)(
  `A database fault fails the request, not the process [postgres]${postgresAvailable ? '' : ' (skipped: PostgreSQL absent)'}`,
  () => {
    let proxy: FaultProxy;
    let t: TestApp;
    let provider: SeededProvider;
    let admin: postgres.Sql;
    let databaseName: string;

    beforeAll(async () => {
      process.on('unhandledRejection', record);
      process.on('uncaughtException', record);
      proxy = await startProxy(new URL(TEST_DATABASE_URL));
      t = await startTestApp('postgres', { databaseUrl: (direct) => proxy.route(direct) });
      databaseName = new URL(t.testDb.url!).pathname.slice(1);
      admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      provider = await setupProvider(t);
    });

    beforeEach(() => {
      escaped.length = 0;
    });

    afterAll(async () => {
      await admin?.end();
      await t?.close();
      await proxy?.close();
      process.off('unhandledRejection', record);
      process.off('uncaughtException', record);
    });

    /** Terminates every backend of the test database (the app's and the seeds'); answers how many. */
    async function terminateBackends(): Promise<number> {
      const rows = await admin`
        select pg_terminate_backend(pid) as terminated from pg_stat_activity
        where datname = ${databaseName} and pid <> pg_backend_pid()`;
      return rows.filter((r) => r.terminated === true).length;
    }

    /**
     * Runs `requests` all at once and terminates the database's backends when 10%, 35% and 60% of
     * them have succeeded, so the faults land mid-burst whatever the machine's speed (counting
     * successes, not answers: the failures of one termination must not set off the next at once).
     */
    async function burstWithTerminations<T extends { res: { status: number } }>(
      requests: (() => Promise<T>)[],
    ): Promise<{ results: T[]; terminated: number }> {
      const at = new Set([0.1, 0.35, 0.6].map((f) => Math.round(f * requests.length)));
      const terminations: Promise<number>[] = [];
      let succeeded = 0;
      const results = await Promise.all(
        requests.map(async (request) => {
          const result = await request();
          if (result.res.status < 300 && at.has(++succeeded)) terminations.push(terminateBackends());
          return result;
        }),
      );
      const terminated = (await Promise.all(terminations)).reduce((a, b) => a + b, 0);
      return { results, terminated };
    }

    /**
     * A read after the faults, repeated while it answers 503 (as a client told Retry-After would, or
     * a readiness probe): a connection terminated while idle fails the next statement sent on it
     * until the pool has seen it close, and a refused pool reconnects after its backoff.
     */
    async function readAfterFaults<R extends { status: number }>(read: () => Promise<R>): Promise<R> {
      let res = await read();
      for (let attempt = 1; res.status === 503 && attempt < 5; attempt++) res = await read();
      return res;
    }

    async function scimOrg(seats = 50): Promise<ScimOrg> {
      return scimOrganization(t, provider, { seats });
    }

    it('a burst of SCIM creates with backends terminated mid-way answers 201 or a SCIM 503, and every 201 user is kept', async () => {
      const org = await scimOrg(SCIM_BURST);
      const { results, terminated } = await burstWithTerminations(
        Array.from({ length: SCIM_BURST }, () => async () => {
          const userName = uniqueEmail('burst');
          return { userName, res: await org.post('/Users', { schemas: [CORE_USER], userName, name: { givenName: 'Burst', familyName: 'User' } }) };
        }),
      );
      expect(terminated).toBeGreaterThan(0);
      const created = results.filter((r) => r.res.status === 201);
      const failed = results.filter((r) => r.res.status !== 201);
      for (const { res } of failed) expectScimUnavailable(res);
      // The faults did hit requests, and did not stop the rest.
      expect(failed.length).toBeGreaterThan(0);
      expect(created.length).toBeGreaterThan(0);
      expect(escaped).toEqual([]);

      const readBack = await Promise.all(
        created.map(({ res }) => readAfterFaults(() => org.get(`/Users/${expectCreated(res, org, 'User').id as string}`))),
      );
      readBack.forEach((res, i) => expect(expectScim(res, 200)).toMatchObject({ id: created[i]!.res.body.id, userName: created[i]!.userName }));
      expect(expectScim(await readAfterFaults(() => org.get('/Users?count=0')), 200).totalResults).toBeGreaterThanOrEqual(created.length);
    });

    it('a burst of API invitations with backends terminated mid-way answers 201 or a problem+json 503, and every 201 member is kept', async () => {
      const client = await createClient(t, provider, { seats: API_BURST });
      const { results, terminated } = await burstWithTerminations(
        Array.from({ length: API_BURST }, () => async () => {
          const email = uniqueEmail('invite');
          const res = await t.request('POST', `/api/v1/organizations/${client.id}/members`, {
            token: provider.adminToken,
            body: { emails: [email], role: 'user' },
          });
          return { email, res };
        }),
      );
      expect(terminated).toBeGreaterThan(0);
      const created = results.filter((r) => r.res.status === 201);
      const failed = results.filter((r) => r.res.status !== 201);
      for (const { res } of failed) expectApiUnavailable(res);
      expect(failed.length).toBeGreaterThan(0);
      expect(created.length).toBeGreaterThan(0);
      expect(escaped).toEqual([]);

      for (const { email, res } of created) expect(res.body.invited).toEqual([expect.objectContaining({ email })]);
      const readBack = await Promise.all(
        created.map(({ res }) =>
          readAfterFaults(() =>
            t.request('GET', `/api/v1/organizations/${client.id}/members/${res.body.invited[0].id as string}`, { token: provider.adminToken }),
          ),
        ),
      );
      readBack.forEach((res, i) => expect({ status: res.status, email: res.body.email }).toEqual({ status: 200, email: created[i]!.email }));
    });

    it('while PostgreSQL refuses connections SCIM, the API and /readyz answer 503, and all recover once it accepts again', async () => {
      const org = await scimOrg();
      const before = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('before') }), org, 'User');
      await proxy.refuse();
      try {
        // Whether a key is valid cannot be known without the database: both are unavailable, not 401.
        expectScimUnavailable(await org.request('GET', '/Users', { token: 'not-a-key' }));
        expectScimUnavailable(await org.get(`/Users/${before.id as string}`));
        expectScimUnavailable(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('refused') }));
        expectApiUnavailable(await t.request('GET', `/api/v1/organizations/${org.oid}/members`, { token: provider.adminToken }));
        expectApiUnavailable(await t.request('POST', `/api/v1/organizations/${org.oid}/members`, { token: provider.adminToken, body: { emails: [uniqueEmail('refused')], role: 'user' } }));
        expect(await t.request('GET', '/readyz')).toMatchObject({ status: 503, body: { status: 'database unreachable' } });
        expect((await t.request('GET', '/healthz')).status).toBe(200);
        expect(escaped).toEqual([]);
      } finally {
        await proxy.allow();
      }

      // The pool reconnects by itself, no restart: ready again within a few probes (each waits out
      // at most one reconnect backoff), and then requests succeed.
      expect((await readAfterFaults(() => t.request('GET', '/readyz'))).status).toBe(200);
      const after = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('after') }), org, 'User');
      expectScim(await org.get(`/Users/${after.id as string}`), 200);
      expectScim(await org.get(`/Users/${before.id as string}`), 200);
      const api = await t.request('GET', `/api/v1/organizations/${org.oid}/members`, { token: provider.adminToken });
      expect(api.status).toBe(200);
      expect(escaped).toEqual([]);
    });
  },
);
