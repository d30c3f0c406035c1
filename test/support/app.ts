/**
 * The real app on port 0 over a test database, with an injected clock, a known operator token
 * and a small fetch helper. Mails are read back from the outbox.
 */
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { createApp } from '../../src/app.js';
import type { AuthLimits } from '../../src/http/rate-limit.js';
import { testConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/index.js';
import { createLogger } from '../../src/logging.js';
import { createDirectoryWorker, createEngine, type DirectoryWorker, type Engine } from '../../src/membership/index.js';
import { listOutbox } from '../../src/membership/mail.js';
import { createDirectorySync, type DirectorySync, type ReconcileDirectory, type ResolveSettings } from '../../src/sync/runner.js';
import type { SourceFactory } from '../../src/sync/source.js';
import { fakeReconcile, fixedSource, testResolveSettings } from './directory.js';
import { openTestDatabase, type Driver, type TestDatabase } from './db.js';

export const SYSTEM_TOKEN = 'test-operator-token-0123456789abcdef0123456789';
/** ENCRYPTION_KEY of test engines: fixed, so a test can open what the engine sealed. */
export const TEST_ENCRYPTION_KEY = 'test-encryption-key-0123456789abcdef0123456789';

export interface TestClock {
  now: Date;
  advance(ms: number): void;
}

export interface TestApp {
  url: string;
  engine: Engine;
  testDb: TestDatabase;
  clock: TestClock;
  /** The directory sync runner the app starts runs with, and the worker it records them with. */
  directory: DirectorySync;
  worker: DirectoryWorker;
  request(method: string, path: string, options?: { token?: string | undefined; body?: unknown; raw?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  /** The token in the newest mail to `email` (from its link's `token` parameter), read as the operator reads the outbox. */
  mailedToken(email: string): Promise<string>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  bodyLimit?: string;
  /**
   * PostgreSQL only: the URL the app (engine and /readyz) reaches the test database by, given the
   * direct one, e.g. through a proxy a fault test can cut. `testDb` stays direct.
   */
  databaseUrl?: (direct: string) => string;
  /** Where log lines go (level info); silent without. */
  logStream?: DestinationStream;
  /** Directory sync: the connectors' factory (default: an empty directory), and the reconcile seam (default: a fake). */
  directorySource?: SourceFactory;
  reconcile?: ReconcileDirectory;
  /** The reconcile seam built from the app's engine (e.g. `reconcileThrough` of src/sync/runner.ts); wins over `reconcile`. */
  reconcileWith?: (engine: Engine) => ReconcileDirectory;
  resolveSettings?: ResolveSettings;
  /** Failed-authentication budgets; unlimited without. */
  rateLimits?: AuthLimits;
  /** SSO_ALLOW_HTTP (the tests' IdPs listen on http://127.0.0.1). */
  ssoAllowHttp?: boolean;
  /** DNS for domain verification (e.g. a resolver of the tests' DNS server); without it every lookup fails. */
  resolveTxt?: (name: string) => Promise<string[][]>;
}

export async function startTestApp(driver: Driver, options: TestAppOptions = {}): Promise<TestApp> {
  const testDb = await openTestDatabase(driver);
  const appDatabase =
    options.databaseUrl && testDb.url
      ? await openDatabase({ databaseUrl: options.databaseUrl(testDb.url), dataDir: 'memory://', poolSize: 20 })
      : testDb.database;
  const clock: TestClock = {
    now: new Date('2026-03-01T12:00:00.000Z'),
    advance(ms) {
      this.now = new Date(this.now.getTime() + ms);
    },
  };
  const publicUrl = 'http://portico.test';
  const engine = createEngine(
    { db: appDatabase.db, clock: () => clock.now, publicUrl, encryptionKey: TEST_ENCRYPTION_KEY, resolveTxt: options.resolveTxt },
    { systemToken: SYSTEM_TOKEN },
  );
  // The production logger (serializers and redaction included), so tests cover what it writes.
  const logger = options.logStream
    ? createLogger(testConfig({ LOG_LEVEL: 'info' }), options.logStream)
    : createLogger(testConfig());
  const worker = createDirectoryWorker({ db: appDatabase.db, clock: () => clock.now, publicUrl, encryptionKey: TEST_ENCRYPTION_KEY });
  const directory = createDirectorySync({
    worker,
    factory: options.directorySource ?? fixedSource({ users: [], groups: [], warnings: [] }),
    resolveSettings: options.resolveSettings ?? testResolveSettings,
    reconcile: options.reconcileWith?.(engine) ?? options.reconcile ?? fakeReconcile(),
    logger,
    instanceId: 'test-app',
    heartbeatMs: 100,
  });
  const app = createApp({
    engine,
    database: appDatabase,
    logger,
    publicUrl,
    bodyLimit: options.bodyLimit ?? '100kb',
    directory,
    ssoAllowHttp: options.ssoAllowHttp,
    rateLimits: options.rateLimits,
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    engine,
    testDb,
    clock,
    directory,
    worker,
    async request(method, path, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      let body: string | undefined = opts.raw;
      if (opts.body !== undefined) body = JSON.stringify(opts.body);
      if (body !== undefined) headers['content-type'] ??= 'application/json';
      const res = await fetch(`${url}${path}`, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async mailedToken(email) {
      // Bodies are sealed at rest: read as the operator's outbox reads them (newest first), directly.
      const [mail] = await listOutbox({ db: testDb.database.db, encryptionKey: TEST_ENCRYPTION_KEY }, { recipient: email });
      const link = mail?.text.match(/https?:\/\/\S+/)?.[0];
      const token = link ? new URL(link).searchParams.get('token') : null;
      if (!token) throw new Error(`no mailed token for ${email}`);
      return token;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await directory.stop();
      if (appDatabase !== testDb.database) await appDatabase.close();
      await testDb.close();
    },
  };
}
