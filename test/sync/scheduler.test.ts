/**
 * Scheduled directory syncs run exactly once per slot however many instances share the database,
 * never on SCHEDULER=off instances, and a run whose instance died (expired lease) is failed and
 * taken over by the next one. On PostgreSQL each "instance" has its own connection pool.
 */
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { createLogger } from '../../src/logging.js';
import { testConfig } from '../../src/config.js';
import { openDatabase, schema, type Database } from '../../src/db/index.js';
import { createDirectoryWorker, DIRECTORY_LEASE_MS } from '../../src/membership/index.js';
import { createDirectorySync } from '../../src/sync/runner.js';
import { createScheduler, type Scheduler } from '../../src/sync/scheduler.js';
import { startTestApp, SYSTEM_TOKEN, TEST_ENCRYPTION_KEY, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { fakeReconcile, fixedSource, OPENLDAP_CONFIG, testResolveSettings, user } from '../support/directory.js';
import { createClient, must, setupProvider } from '../support/http-seed.js';

describeEachDriver('directory sync scheduler', (driver) => {
  let t: TestApp;
  let oid: string;
  const extraDatabases: Database[] = [];
  const schedulers: Scheduler[] = [];
  let reconciles = 0;

  /** One instance: its own database connection (PostgreSQL), worker, runner and scheduler. */
  async function instance(name: string, enabled = true) {
    const database = t.testDb.url ? await openDatabase({ databaseUrl: t.testDb.url, dataDir: 'memory://', poolSize: 5 }) : t.testDb.database;
    if (database !== t.testDb.database) extraDatabases.push(database);
    const deps = { db: database.db, clock: () => t.clock.now, publicUrl: 'http://portico.test', encryptionKey: TEST_ENCRYPTION_KEY };
    const worker = createDirectoryWorker(deps);
    const logger = createLogger(testConfig());
    const reconcile = fakeReconcile();
    const sync = createDirectorySync({
      worker,
      factory: fixedSource({ users: [user(1)], groups: [], warnings: [] }),
      resolveSettings: testResolveSettings,
      reconcile: async (input) => {
        reconciles += 1;
        return reconcile(input);
      },
      logger,
      instanceId: name,
      heartbeatMs: 50,
    });
    const scheduler = createScheduler({ worker, sync, logger, instanceId: name, clock: () => t.clock.now, enabled });
    schedulers.push(scheduler);
    return { worker, sync, scheduler };
  }

  const runs = () =>
    t.testDb.database.db.select().from(schema.directoryRuns).where(eq(schema.directoryRuns.organizationId, oid)).orderBy(schema.directoryRuns.createdAt);
  const configure = async (schedule: object) => {
    const provider = await setupProvider(t);
    oid = (await createClient(t, provider, { plan: 'teams' })).id;
    must(
      await t.request('PUT', `/api/v1/organizations/${oid}/directory`, { token: provider.adminToken, body: { ...OPENLDAP_CONFIG, schedule } }),
      200,
      'configure',
    );
  };

  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(async () => {
    await t.close();
  });
  beforeEach(async () => {
    // Organizations of earlier tests keep their schedules: start from an empty database.
    await t.testDb.truncate();
    reconciles = 0;
    t.clock.now = new Date('2026-03-01T12:00:20.000Z');
  });
  afterEach(async () => {
    for (const s of schedulers.splice(0)) await s.stop();
    for (const d of extraDatabases.splice(0)) await d.close();
  });

  it('two schedulers racing on one database run exactly one sync per interval slot', async () => {
    await configure({ intervalMinutes: 5 });
    const a = await instance('instance-a');
    const b = await instance('instance-b');
    for (let slot = 0; slot < 3; slot += 1) {
      await Promise.all([a.scheduler.tick(), b.scheduler.tick(), a.scheduler.tick(), b.scheduler.tick()]);
      await Promise.all([a.sync.idle(), b.sync.idle()]);
      // A second pass in the same slot queues nothing.
      await Promise.all([a.scheduler.tick(), b.scheduler.tick()]);
      await Promise.all([a.sync.idle(), b.sync.idle()]);
      t.clock.advance(5 * 60_000);
    }
    const rows = await runs();
    expect(rows.map((r) => [r.scheduledFor?.toISOString(), r.status, r.trigger])).toEqual([
      ['2026-03-01T12:00:00.000Z', 'succeeded', 'schedule'],
      ['2026-03-01T12:05:00.000Z', 'succeeded', 'schedule'],
      ['2026-03-01T12:10:00.000Z', 'succeeded', 'schedule'],
    ]);
    expect(reconciles).toBe(3);
  });

  it('a cron schedule runs in the minutes it matches, once, and not in the others', async () => {
    await configure({ cron: '*/15 * * * *' });
    const a = await instance('instance-a');
    const b = await instance('instance-b');
    for (let minute = 0; minute < 16; minute += 1) {
      await Promise.all([a.scheduler.tick(), b.scheduler.tick()]);
      await Promise.all([a.sync.idle(), b.sync.idle()]);
      t.clock.advance(60_000);
    }
    expect((await runs()).map((r) => r.scheduledFor?.toISOString())).toEqual(['2026-03-01T12:00:00.000Z', '2026-03-01T12:15:00.000Z']);
    expect(reconciles).toBe(2);
  });

  it('an instance with SCHEDULER=off never runs a sync, scheduled or queued', async () => {
    await configure({ intervalMinutes: 5 });
    const off = await instance('instance-off', false);
    off.scheduler.start();
    await off.scheduler.tick();
    expect(await runs()).toEqual([]);
    // A manual run queued elsewhere (its instance gone before starting it) is not picked up either.
    const org = await t.engine.organization(oid, { kind: 'system' });
    await org.directory.startRun({ dryRun: false, trigger: 'manual' });
    await off.scheduler.tick();
    await off.sync.idle();
    expect((await runs()).map((r) => r.status)).toEqual(['queued']);
    expect(reconciles).toBe(0);
    // An instance with SCHEDULER=on picks the queued run up, and runs it once.
    const on = await instance('instance-on');
    await Promise.all([on.scheduler.tick(), on.scheduler.tick()]);
    await on.sync.idle();
    expect((await runs()).map((r) => [r.trigger, r.status, r.leaseOwner])).toEqual(
      expect.arrayContaining([['manual', 'succeeded', 'instance-on']]),
    );
  });

  it('a run whose instance died is failed once its lease expires, and the next run takes over', async () => {
    await configure({ intervalMinutes: 5 });
    const crashed = createDirectoryWorker({ db: t.testDb.database.db, clock: () => t.clock.now, publicUrl: 'http://portico.test', encryptionKey: TEST_ENCRYPTION_KEY });
    const org = await t.engine.organization(oid, { kind: 'system' });
    const stuck = await org.directory.startRun({ dryRun: false, trigger: 'manual' });
    expect(await crashed.claimRun({ runId: stuck.id, owner: 'crashed-instance' })).toBeTruthy();
    // No heartbeat comes. While the lease holds, nobody else runs the organization.
    const a = await instance('instance-a');
    await a.scheduler.tick();
    await a.sync.idle();
    expect((await runs()).map((r) => r.status)).toEqual(['running']);
    const conflict = await t.request('POST', `/api/v1/organizations/${oid}/directory/sync`, { token: SYSTEM_TOKEN });
    expect(conflict.status).toBe(409);

    t.clock.advance(DIRECTORY_LEASE_MS + 1_000);
    await a.scheduler.tick();
    await a.sync.idle();
    const rows = await runs();
    expect(rows.map((r) => [r.id === stuck.id, r.status])).toEqual([
      [true, 'failed'],
      [false, 'succeeded'],
    ]);
    expect(rows[0]!.message).toMatch(/stopped before it finished/);
    // The crashed instance, back, can no longer record anything on the run it lost.
    expect(await crashed.heartbeat({ runId: stuck.id, owner: 'crashed-instance' })).toBe(false);
    expect(await crashed.finishRun({ runId: stuck.id, owner: 'crashed-instance', result: { status: 'succeeded' } })).toBe(false);
    expect(reconciles).toBe(1);
  });
});
