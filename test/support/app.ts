/**
 * The real app on port 0 over a test database, with an injected clock, a known operator token
 * and a small fetch helper. Mails are read back from the outbox.
 */
import type { AddressInfo } from 'node:net';
import { desc, eq } from 'drizzle-orm';
import { pino } from 'pino';
import { createApp } from '../../src/app.js';
import { schema } from '../../src/db/index.js';
import { createEngine, type Engine } from '../../src/membership/index.js';
import { openTestDatabase, type Driver, type TestDatabase } from './db.js';

export const SYSTEM_TOKEN = 'test-operator-token-0123456789abcdef0123456789';

export interface TestClock {
  now: Date;
  advance(ms: number): void;
}

export interface TestApp {
  url: string;
  engine: Engine;
  testDb: TestDatabase;
  clock: TestClock;
  request(method: string, path: string, options?: { token?: string | undefined; body?: unknown; raw?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  /** The token in the newest mail to `email` (from its link's `token` parameter). */
  mailedToken(email: string): Promise<string>;
  close(): Promise<void>;
}

export async function startTestApp(driver: Driver, options: { bodyLimit?: string } = {}): Promise<TestApp> {
  const testDb = await openTestDatabase(driver);
  const clock: TestClock = {
    now: new Date('2026-03-01T12:00:00.000Z'),
    advance(ms) {
      this.now = new Date(this.now.getTime() + ms);
    },
  };
  const publicUrl = 'http://portico.test';
  const engine = createEngine({ db: testDb.database.db, clock: () => clock.now, publicUrl }, { systemToken: SYSTEM_TOKEN });
  const app = createApp({
    engine,
    database: testDb.database,
    logger: pino({ level: 'silent' }),
    publicUrl,
    bodyLimit: options.bodyLimit ?? '100kb',
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    engine,
    testDb,
    clock,
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
      const [mail] = await testDb.database.db
        .select()
        .from(schema.outbox)
        .where(eq(schema.outbox.recipient, email.toLowerCase()))
        .orderBy(desc(schema.outbox.seq))
        .limit(1);
      const link = mail?.body.match(/https?:\/\/\S+/)?.[0];
      const token = link ? new URL(link).searchParams.get('token') : null;
      if (!token) throw new Error(`no mailed token for ${email}`);
      return token;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await testDb.close();
    },
  };
}
