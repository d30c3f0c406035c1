/**
 * Directory sync through /api/v1 (design.md, "Directory sync"): configuration, test, manual runs
 * and their history, on the real app. The directory and the reconcile are doubles
 * (test/support/directory.ts); the engine, the runner and the database are real.
 */
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { openSecret } from '../../src/membership/secret-box.js';
import type { DirectorySnapshot } from '../../src/sync/source.js';
import { startTestApp, SYSTEM_TOKEN, TEST_ENCRYPTION_KEY, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { AD_CONFIG, bindRefused, fakeReconcile, fixedSource, gate, OPENLDAP_CONFIG, user } from '../support/directory.js';
import { confirmedMember, createClient, expectProblem, must, setupProvider, tableCounts, type SeededProvider } from '../support/http-seed.js';

describeEachDriver('directory sync over HTTP', (driver) => {
  let t: TestApp;
  let provider: SeededProvider;
  let oid: string;
  let base: string;
  // Swapped per test: what the directory holds, whether it can be read, and whether reconcile waits.
  let snapshot: DirectorySnapshot;
  let failRead = false;
  let hold: Promise<unknown> | undefined;
  let reconcileCalls = 0;

  beforeAll(async () => {
    t = await startTestApp(driver, {
      directorySource: (settings) => (failRead ? fixedSource(snapshot, { failure: bindRefused() }) : fixedSource(snapshot))(settings),
      reconcile: async (input) => {
        reconcileCalls += 1;
        return fakeReconcile(hold ? { hold } : {})(input);
      },
    });
  });
  afterAll(() => t.close());
  beforeEach(async () => {
    snapshot = { users: [user(1), user(2, { disabled: true }), user(3, { email: null })], groups: [], warnings: ['member DN cn=ghost names no entry'] };
    failRead = false;
    hold = undefined;
    reconcileCalls = 0;
    provider = await setupProvider(t);
    oid = (await createClient(t, provider, { plan: 'teams' })).id;
    base = `/api/v1/organizations/${oid}/directory`;
  });
  afterEach(() => t.directory.idle());

  const put = (body: unknown, token = provider.adminToken) => t.request('PUT', base, { token, body });
  const storedRow = async () => {
    const [row] = await t.testDb.database.db.select().from(schema.directoryConfigs).where(eq(schema.directoryConfigs.organizationId, oid));
    return row;
  };
  const runRows = () => t.testDb.database.db.select().from(schema.directoryRuns).where(eq(schema.directoryRuns.organizationId, oid));

  it('an Active Directory configuration is stored with its password sealed, and GET never returns the password', async () => {
    const saved = must(await put(AD_CONFIG), 200, 'put AD');
    const { bindPassword: _secret, ...visible } = AD_CONFIG;
    expect(saved).toMatchObject({ ...visible, bindPasswordSet: true });
    expect(saved).not.toHaveProperty('bindPassword');
    const read = must(await t.request('GET', base, { token: provider.adminToken }), 200, 'get');
    expect(read).toEqual(saved);
    expect(JSON.stringify(read)).not.toContain(AD_CONFIG.bindPassword);

    const row = (await storedRow())!;
    expect(JSON.stringify(row)).not.toContain(AD_CONFIG.bindPassword);
    expect(row.config).not.toHaveProperty('bindPassword');
    expect(row.scheduleCron).toBe('0 */6 * * *');
    expect(openSecret(TEST_ENCRYPTION_KEY, row.bindPasswordSealed, { context: `directory:${oid}` })).toBe(AD_CONFIG.bindPassword);
    // Sealed for this organization: the value copied onto another one cannot be opened there.
    expect(() => openSecret(TEST_ENCRYPTION_KEY, row.bindPasswordSealed, { context: 'directory:other' })).toThrow();
  });

  it('an OpenLDAP configuration is stored; a PUT without bindPassword keeps the stored one', async () => {
    must(await put(OPENLDAP_CONFIG), 200, 'put OpenLDAP');
    const { bindPassword: _secret, ...withoutPassword } = OPENLDAP_CONFIG;
    const replaced = must(await put({ ...withoutPassword, schedule: { cron: '*/15 * * * *' } }), 200, 'put again');
    expect(replaced).toMatchObject({ kind: 'ldap', schedule: { cron: '*/15 * * * *' }, bindPasswordSet: true });
    const row = (await storedRow())!;
    expect(row.scheduleIntervalMinutes).toBeNull();
    expect(openSecret(TEST_ENCRYPTION_KEY, row.bindPasswordSealed, { context: `directory:${oid}` })).toBe(OPENLDAP_CONFIG.bindPassword);
  });

  it('a first configuration without bindPassword is refused naming the field, and nothing is stored', async () => {
    const { bindPassword: _secret, ...withoutPassword } = OPENLDAP_CONFIG;
    const res = await put(withoutPassword);
    expectProblem(res, 400, 'input.invalid');
    expect(res.body.errors).toEqual([expect.objectContaining({ path: 'body.bindPassword' })]);
    expect(await storedRow()).toBeUndefined();
  });

  it('a bad configuration answers 400 naming each bad field, and stores nothing', async () => {
    const before = await tableCounts(t);
    const res = await put({
      ...AD_CONFIG,
      url: 'http://dc1.example.test',
      users: { baseDn: '', filter: 'objectClass=person' },
      schedule: { cron: '99 * * * *' },
      options: { shrinkGuardPercent: 150 },
      surprise: true,
    });
    expectProblem(res, 400, 'request.invalid');
    const paths = (res.body.errors as { path: string }[]).map((e) => e.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'body.url',
        'body.users.baseDn',
        'body.users.filter',
        'body.schedule.cron',
        'body.options.shrinkGuardPercent',
        'body.surprise',
      ]),
    );
    for (const schedule of [{ intervalMinutes: 1 }, { cron: '* * * * * *' }, { cron: '*/5 * * * *', intervalMinutes: 10 }]) {
      const bad = await put({ ...AD_CONFIG, schedule });
      expectProblem(bad, 400, 'request.invalid');
      expect((bad.body.errors as { path: string }[])[0]!.path).toMatch(/^body\.schedule/);
    }
    expectProblem(await put({ ...AD_CONFIG, bindDn: 'cn=a\u0000b' }), 400, 'request.invalid');
    expect(await storedRow()).toBeUndefined();
    expect(await tableCounts(t)).toEqual(before);
  });

  it('directory sync is a Teams feature: a Teams organization configures it, as an Enterprise one does', async () => {
    must(await put(AD_CONFIG), 200, 'teams');
    const enterprise = await createClient(t, provider, { plan: 'enterprise' });
    must(await t.request('PUT', `/api/v1/organizations/${enterprise.id}/directory`, { token: provider.adminToken, body: AD_CONFIG }), 200, 'enterprise');
  });

  it('a member with the user role is refused (403) and another organization’s member gets 404; neither changes anything', async () => {
    must(await put(AD_CONFIG), 200, 'put');
    const plain = await confirmedMember(t, oid, provider.adminToken, { role: 'user' });
    const other = await createClient(t, provider, { plan: 'teams' });
    const stranger = await confirmedMember(t, other.id, provider.adminToken, { role: 'admin' });
    const before = await tableCounts(t);
    for (const [method, path, body] of [
      ['PUT', base, OPENLDAP_CONFIG],
      ['GET', base, undefined],
      ['DELETE', base, undefined],
      ['POST', `${base}/test`, undefined],
      ['POST', `${base}/sync`, {}],
      ['GET', `${base}/runs`, undefined],
    ] as const) {
      expectProblem(await t.request(method, path, { token: plain.token, body }), 403, 'auth.permission_denied');
      const res = await t.request(method, path, { token: stranger.token, body });
      expectProblem(res, 404, 'organization.not_found');
    }
    expect(await tableCounts(t)).toEqual(before);
    expect(await runRows()).toEqual([]);
    // A custom role (Enterprise) with manageUsers may.
    const enterprise = await createClient(t, provider, { plan: 'enterprise' });
    const manager = await confirmedMember(t, enterprise.id, provider.adminToken, { role: 'custom', permissions: { manageUsers: true } });
    must(await t.request('PUT', `/api/v1/organizations/${enterprise.id}/directory`, { token: manager.token, body: AD_CONFIG }), 200, 'custom manageUsers');
    const reporter = await confirmedMember(t, enterprise.id, provider.adminToken, { role: 'custom', permissions: { accessReports: true } });
    expectProblem(await t.request('GET', `/api/v1/organizations/${enterprise.id}/directory`, { token: reporter.token }), 403, 'auth.permission_denied');
  });

  it('DELETE removes the configuration; then GET, test and sync answer 404', async () => {
    must(await put(AD_CONFIG), 200, 'put');
    expect((await t.request('DELETE', base, { token: provider.adminToken })).status).toBe(204);
    expect(await storedRow()).toBeUndefined();
    expectProblem(await t.request('GET', base, { token: provider.adminToken }), 404, 'directory.not_found');
    expectProblem(await t.request('DELETE', base, { token: provider.adminToken }), 404, 'directory.not_found');
    expectProblem(await t.request('POST', `${base}/test`, { token: provider.adminToken }), 404, 'directory.not_found');
    expectProblem(await t.request('POST', `${base}/sync`, { token: provider.adminToken }), 404, 'directory.not_found');
  });

  it('test reports what a sync would read (counts, samples, problems) and changes nothing', async () => {
    must(await put(OPENLDAP_CONFIG), 200, 'put');
    const before = await tableCounts(t);
    const report = must(await t.request('POST', `${base}/test`, { token: provider.adminToken }), 200, 'test');
    expect(report).toMatchObject({ ok: true, users: 3, groups: 0, disabled: 1 });
    expect(report.samples).toHaveLength(3);
    expect(report.samples[0]).toEqual({ externalId: user(1).externalId, dn: user(1).dn, email: 'user1@example.test', name: 'User 1', disabled: false });
    expect(report.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ externalId: user(3).externalId, problem: 'no email address' }),
        { problem: 'member DN cn=ghost names no entry' },
      ]),
    );
    expect(JSON.stringify(report)).not.toContain(OPENLDAP_CONFIG.bindPassword);
    expect(await tableCounts(t)).toEqual(before);
    expect(await runRows()).toEqual([]);
    expect(reconcileCalls).toBe(0);
  });

  it('a directory that refuses the bind answers test with 200 {ok: false, failure, message}', async () => {
    must(await put(OPENLDAP_CONFIG), 200, 'put');
    failRead = true;
    const report = must(await t.request('POST', `${base}/test`, { token: provider.adminToken }), 200, 'test');
    expect(report).toEqual({ ok: false, failure: 'bind', message: expect.stringContaining('refused') });
  });

  it('sync answers 202 with a queued run, which runs to succeeded and is listed in the history', async () => {
    must(await put(AD_CONFIG), 200, 'put');
    const started = must(await t.request('POST', `${base}/sync`, { token: provider.adminToken }), 202, 'sync');
    expect(started).toMatchObject({ id: expect.any(String), status: 'queued', dryRun: false, trigger: 'manual', startedAt: null, finishedAt: null });
    await t.directory.idle();
    const run = must(await t.request('GET', `${base}/runs/${started.id}`, { token: provider.adminToken }), 200, 'run');
    expect(run).toMatchObject({
      id: started.id,
      status: 'succeeded',
      startedAt: expect.any(String),
      finishedAt: expect.any(String),
      counts: { read: 3, invited: 3, linked: 0, updated: 0, revoked: 0, restored: 0, removed: 0, groupsCreated: 0, groupsUpdated: 0, problems: 0 },
      problems: [],
    });
    expect(run).not.toHaveProperty('changes');
    expect(run).not.toHaveProperty('progress');

    const dry = must(await t.request('POST', `${base}/sync`, { token: provider.adminToken, body: { dryRun: true } }), 202, 'dry run');
    await t.directory.idle();
    const dryRun = must(await t.request('GET', `${base}/runs/${dry.id}`, { token: provider.adminToken }), 200, 'dry run');
    expect(dryRun).toMatchObject({ status: 'succeeded', dryRun: true, changes: expect.arrayContaining([expect.objectContaining({ action: 'invite' })]) });

    const history = must(await t.request('GET', `${base}/runs`, { token: provider.adminToken }), 200, 'history').data;
    expect(history.map((r: { id: string }) => r.id).sort()).toEqual([started.id, dry.id].sort());
    expect(history.every((r: object) => !('changes' in r))).toBe(true);
    expectProblem(await t.request('GET', `${base}/runs/00000000-0000-4000-8000-000000000000`, { token: provider.adminToken }), 404, 'directory_run.not_found');
    expectProblem(await t.request('GET', `${base}/runs/not-an-id`, { token: provider.adminToken }), 404, 'directory_run.not_found');
  });

  it('a second sync while one runs answers 409, and the running one shows progress', async () => {
    must(await put(AD_CONFIG), 200, 'put');
    const held = gate();
    hold = held.promise;
    const first = must(await t.request('POST', `${base}/sync`, { token: provider.adminToken }), 202, 'first');
    // The runner claims it and reaches the reconcile, which waits on the gate.
    await expect.poll(() => reconcileCalls).toBe(1);
    const second = await t.request('POST', `${base}/sync`, { token: provider.adminToken, body: { dryRun: true } });
    expectProblem(second, 409, 'conflict');
    expect(second.body.errors).toEqual({ runId: first.id, status: 'running' });
    await expect
      .poll(async () => (await t.request('GET', `${base}/runs/${first.id}`, { token: provider.adminToken })).body, { timeout: 5_000 })
      .toMatchObject({ status: 'running', progress: { phase: 'write' } });
    held.open();
    await t.directory.idle();
    expect((await runRows()).map((r) => r.status)).toEqual(['succeeded']);
    must(await t.request('POST', `${base}/sync`, { token: provider.adminToken }), 202, 'after it finished');
  });

  it('a sync whose read fails ends failed with the failure and message, and reconciles nothing', async () => {
    must(await put(AD_CONFIG), 200, 'put');
    failRead = true;
    const started = must(await t.request('POST', `${base}/sync`, { token: provider.adminToken, body: {} }), 202, 'sync');
    await t.directory.idle();
    const run = must(await t.request('GET', `${base}/runs/${started.id}`, { token: SYSTEM_TOKEN }), 200, 'run');
    expect(run).toMatchObject({ status: 'failed', failure: 'bind', message: expect.stringContaining('refused'), counts: { read: 0, removed: 0 } });
    expect(reconcileCalls).toBe(0);
  });
});
