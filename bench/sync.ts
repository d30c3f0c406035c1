/**
 * Directory sync benchmark, end to end (issue 7 point 6): a throwaway slapd loaded by `slapadd -q`
 * with N inetOrgPerson users and G groupOfNames (~200 members each), a fresh PostgreSQL database
 * (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else 127.0.0.1:5432/test; created and dropped), an
 * engine and a managed Enterprise organization, then in one run:
 *  - the read floor: `ldapsearch -E pr=1000/noprompt` of the users plus the groups, to /dev/null;
 *  - a first full sync, a no-change resync and a 1%-change resync through the real chain the runner
 *    uses (resolveConnectionSettings → prepareReconcile, whose state load runs beside the read →
 *    createDirectorySource → read → reconcile through engine.directorySync), with read / state /
 *    plan / write split out ("state" is the load's own time; only what it takes past the end of the
 *    read counts towards the phase);
 *  - the peak RSS of this process (which is the Portico process: the sync runs in-process) per phase,
 *    and its CPU time (GC threads included), which, unlike wall time, other load on the machine does
 *    not inflate.
 * No node flags: run as `npm run bench:sync` (the tsx CLI; its loader thread is part of the RSS).
 * Usage: npm run bench:sync -- [--users=100000 --groups=1000 --per-group=200]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import { createDirectorySource } from '../connectors/index.js';
import { createEngine } from '../src/membership/index.js';
import { resolveConnectionSettings } from '../src/sync/presets.js';
import { prepareReconcile } from '../src/sync/runner.js';
import { reconcile, type ReconcileTarget } from '../src/sync/reconcile.js';
import { directoryConfigSchema } from '../src/sync/settings.js';
import { startBenchSlapd, userDn } from './sync-slapd.js';
import { benchArgs, createBenchDatabase } from './support.js';

const args = benchArgs();
const USERS = Number(args.users ?? 100_000);
const GROUPS = Number(args.groups ?? 1_000);
const PER_GROUP = Number(args['per-group'] ?? 200);
const SEATS = Number(args.seats ?? Math.max(150_000, Math.ceil(USERS * 1.5)));
const ENCRYPTION_KEY = randomBytes(32).toString('base64');
const DISABLED_FILTER = '(employeeType=disabled)';

// ---- memory: sampled every 50 ms, and the kernel's high-water mark reset per phase ------------
const mb = (bytes: number) => bytes / 1024 / 1024;
let sampledPeak = 0;
const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, process.memoryUsage().rss)), 50);
sampler.unref();
function vmHwmBytes(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
let hwmResettable = true;
function resetPeak() {
  (globalThis as { gc?: () => void }).gc?.();
  sampledPeak = process.memoryUsage().rss;
  try {
    writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS (Linux ≥ 4.0)
  } catch {
    hwmResettable = false;
  }
}
function peak(): number {
  const hwm = hwmResettable ? vmHwmBytes() : undefined;
  return Math.max(sampledPeak, process.memoryUsage().rss, hwm ?? 0);
}

// ---- the read floor -------------------------------------------------------------------------
function ldapsearchSeconds(url: string, bindDn: string, password: string, base: string, filter: string, attrs: string[]): number {
  const start = performance.now();
  const r = spawnSync(
    'ldapsearch',
    ['-x', '-LLL', '-H', url, '-D', bindDn, '-w', password, '-b', base, '-E', 'pr=1000/noprompt', filter, ...attrs],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const seconds = (performance.now() - start) / 1000;
  if (r.status !== 0) throw new Error(`ldapsearch failed (${r.status}): ${r.stderr.toString()}`);
  return seconds;
}

interface PhaseRow {
  phase: string;
  seconds: number;
  /** CPU time of this process over the phase: a figure a busy machine's other processes do not inflate. */
  cpuSeconds?: number;
  peakMb: number;
  detail: string;
  goal?: { text: string; met: boolean };
}

async function main() {
  console.log(`bench:sync — ${USERS} users, ${GROUPS} groups × ~${PER_GROUP} members, seats ${SEATS}`);
  const slapd = await startBenchSlapd({ users: USERS, groups: GROUPS, perGroup: PER_GROUP });
  console.log(`slapd ${slapd.url}: LDIF written, slapadd -q and started in ${slapd.loadSeconds.toFixed(2)} s`);

  const { database, url, drop } = await createBenchDatabase('bench_sync');
  const raw = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const engine = createEngine({ db: database.db, clock: () => new Date(), publicUrl: 'http://bench.local', encryptionKey: ENCRYPTION_KEY });
    const provider = await engine.createProvider({ kind: 'system' }, { name: 'Bench MSP', adminEmail: 'admin@bench.example' });
    const [mail] = await engine.listOutbox({ kind: 'system' }, { recipient: 'admin@bench.example' });
    const setupToken = new URL(mail!.text.match(/https?:\/\/\S+/)![0]).searchParams.get('token')!;
    const { apiToken } = await engine.completeProviderSetup({ token: setupToken });
    const principal = await engine.authenticate(apiToken);
    const org = await (await engine.provider(provider.id, principal)).createClient({ name: 'Bench', plan: 'enterprise', seats: SEATS });

    // The configuration an administrator would PUT, validated by the same schema, resolved by the preset.
    const config = directoryConfigSchema.parse({
      kind: 'ldap',
      preset: 'openldap',
      url: slapd.url,
      bindDn: slapd.adminDn,
      users: { baseDn: slapd.peopleDn, disabledFilter: DISABLED_FILTER },
      groups: { baseDn: slapd.groupsDn },
      options: { disabledUsers: 'revoke', removeMissing: true, shrinkGuardPercent: 10, largeImport: true },
      pageSize: 1000,
    });
    const options = {
      dryRun: false,
      disabledUsers: config.options!.disabledUsers!,
      removeMissing: config.options!.removeMissing!,
      shrinkGuardPercent: config.options!.shrinkGuardPercent!,
      largeImport: config.options!.largeImport!,
    };

    // ---- read floor ----
    const floorOnce = () =>
      ldapsearchSeconds(slapd.url, slapd.adminDn, slapd.adminPassword, slapd.peopleDn, '(objectClass=inetOrgPerson)', ['mail', 'cn', 'entryUUID']) +
      ldapsearchSeconds(slapd.url, slapd.adminDn, slapd.adminPassword, slapd.groupsDn, '(objectClass=groupOfNames)', ['cn', 'member', 'entryUUID']);
    floorOnce(); // warm slapd's caches, as the syncs after the first see them
    const floors = [floorOnce(), floorOnce(), floorOnce()].sort((a, b) => a - b);
    const floor = floors[1]!;
    console.log(`read floor (ldapsearch -E pr=1000/noprompt, users + groups, median of 3): ${floor.toFixed(2)} s  [${floors.map((f) => f.toFixed(2)).join(', ')}]`);

    const rows: PhaseRow[] = [{ phase: 'read floor (ldapsearch)', seconds: floor, peakMb: NaN, detail: '' }];
    const m0 = process.memoryUsage();
    console.log(`RSS before the first sync (engine, drivers, tsx loaded): ${mb(m0.rss).toFixed(0)} MB (heap used ${mb(m0.heapUsed).toFixed(0)} MB)`);

    const sync = async (label: string) => {
      resetPeak();
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      // As src/sync/runner.ts's execute: settings → the organization's state starts loading
      // (prepareReconcile) → source → read → close → reconcile against the state loaded meanwhile.
      let stateMs = 0;
      let stateDone = 0;
      const prepared = prepareReconcile(engine, org.id).then((target) => ({
        currentState: async () => {
          const s = performance.now();
          try {
            return await target.currentState();
          } finally {
            stateDone = performance.now();
            stateMs += stateDone - s;
          }
        },
        applyBatch: target.applyBatch,
      }));
      prepared.catch(() => undefined);
      // The state load starts at once, as in the runner (currentState is called here, not by reconcile).
      const stateLoad = prepared.then((t) => t.currentState());
      stateLoad.catch(() => undefined);
      const source = createDirectorySource(resolveConnectionSettings(config, slapd.adminPassword));
      let snapshot;
      try {
        snapshot = await source.read({});
      } finally {
        await source.close().catch(() => {});
      }
      const tRead = performance.now();
      const readPeak = peak();
      const target = await prepared;
      let writeMs = 0;
      let batches = 0;
      let slowestBatchMs = 0;
      const timed: ReconcileTarget = {
        currentState: () => stateLoad,
        applyBatch: async (batch) => {
          const s = performance.now();
          try {
            return await target.applyBatch(batch);
          } finally {
            const ms = performance.now() - s;
            writeMs += ms;
            batches += 1;
            slowestBatchMs = Math.max(slowestBatchMs, ms);
          }
        },
      };
      const result = await reconcile(timed, snapshot, options);
      const t1 = performance.now();
      const cpu = process.cpuUsage(cpu0);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      const totalMs = t1 - t0;
      const readMs = tRead - t0;
      // The state loads beside the read: only what it took past the read's end is on the clock.
      const stateWaitMs = Math.max(0, stateDone - tRead);
      const planMs = t1 - tRead - stateWaitMs - writeMs;
      const c = result.counts;
      const changed = c.invited + c.linked + c.updated + c.revoked + c.restored + c.removed;
      const p = peak();
      const detail =
        `read ${(readMs / 1000).toFixed(2)} s (${snapshot.users.length} users, ${snapshot.groups.length} groups, peak ${mb(readPeak).toFixed(0)} MB) · ` +
        `state ${(stateMs / 1000).toFixed(2)} s beside the read (waited ${(stateWaitMs / 1000).toFixed(2)} s after it) · plan ${(planMs / 1000).toFixed(2)} s · write ${(writeMs / 1000).toFixed(2)} s in ${batches} batches (slowest ${(slowestBatchMs / 1000).toFixed(2)} s) · ` +
        `${Math.round(snapshot.users.length / (totalMs / 1000))} users/s` +
        (changed ? ` · ${Math.round(changed / (writeMs / 1000 || 1))} changes/s written` : '') +
        `\n      ${result.status}${result.message ? ` (${result.message})` : ''} ` +
        JSON.stringify({ ...c, problems: result.problems.length }) +
        (result.problems.length ? ` first problems: ${JSON.stringify(result.problems.slice(0, 3))}` : '');
      console.log(`${label}: ${(totalMs / 1000).toFixed(2)} s (this process's CPU: ${cpuSeconds.toFixed(2)} s, GC threads included)\n      ${detail}`);
      return { seconds: totalMs / 1000, cpuSeconds, peakMb: mb(p), detail, result };
    };

    // ---- first full sync ----
    const first = await sync('first sync');
    rows.push({ phase: 'first full sync', ...first, goal: { text: '≤ 30 s', met: first.seconds <= 30 } });

    // ---- no-change resync ----
    const same = await sync('no-change resync');
    rows.push({ phase: 'no-change resync', ...same, goal: { text: '≤ 3× floor', met: same.seconds <= 3 * floor } });

    // ---- 1% change: 0.5% new mail, 0.25% disabled, 0.25% deleted (refint drops them from their groups) ----
    const pct = (share: number) => Math.max(1, Math.round(USERS * share));
    const mailChanged = pct(0.005);
    const disabled = pct(0.0025);
    const deleted = pct(0.0025);
    const step = Math.floor(USERS / (mailChanged + disabled + deleted));
    const picks = Array.from({ length: mailChanged + disabled + deleted }, (_, k) => k * step + 3);
    const modify: string[] = [];
    picks.slice(0, mailChanged).forEach((i) => modify.push(`dn: ${userDn(i, slapd.peopleDn)}\nchangetype: modify\nreplace: mail\nmail: moved${i}@bench.example\n`));
    picks.slice(mailChanged, mailChanged + disabled).forEach((i) => modify.push(`dn: ${userDn(i, slapd.peopleDn)}\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n`));
    writeFileSync(join(slapd.dir, 'change.ldif'), modify.join('\n'));
    writeFileSync(join(slapd.dir, 'delete.txt'), picks.slice(mailChanged + disabled).map((i) => userDn(i, slapd.peopleDn)).join('\n') + '\n');
    const tc = performance.now();
    const ldapArgs = ['-x', '-H', slapd.url, '-D', slapd.adminDn, '-w', slapd.adminPassword];
    execFileSync('ldapmodify', [...ldapArgs, '-f', join(slapd.dir, 'change.ldif')], { stdio: 'ignore' });
    execFileSync('ldapdelete', [...ldapArgs, '-f', join(slapd.dir, 'delete.txt')], { stdio: 'ignore' });
    // refint rewrites the groups of deleted users in a background thread: wait until it has (one
    // search for all of them per round).
    const anyDeleted = `(|${picks
      .slice(mailChanged + disabled)
      .map((i) => `(member=${userDn(i, slapd.peopleDn)})`)
      .join('')})`;
    for (let tries = 0; ; tries++) {
      const out = execFileSync('ldapsearch', [...ldapArgs, '-LLL', '-b', slapd.groupsDn, anyDeleted, 'dn']).toString();
      if (!out.trim()) break;
      if (tries >= 6000) throw new Error('refint did not drop the deleted users from their groups within 10 minutes');
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(
      `applied to slapd in ${((performance.now() - tc) / 1000).toFixed(2)} s: ${mailChanged} mail changes, ${disabled} disabled (${DISABLED_FILTER}), ${deleted} deleted`,
    );
    const changed = await sync('1%-change resync');
    rows.push({ phase: '1%-change resync', ...changed, goal: { text: '≤ 5× floor', met: changed.seconds <= 5 * floor } });
    const expect = { updated: mailChanged, revoked: disabled, removed: deleted };
    const got = { updated: changed.result.counts.updated, revoked: changed.result.counts.revoked, removed: changed.result.counts.removed };
    const applied = JSON.stringify(expect) === JSON.stringify(got);
    console.log(`1% change applied as expected: ${applied ? 'yes' : 'NO'} (expected ${JSON.stringify(expect)}, got ${JSON.stringify(got)})`);

    // A sanity check of the database against the directory.
    const [counts] = await raw`select count(*) filter (where status = 'invited')::int as invited, count(*) filter (where status = 'revoked')::int as revoked, count(*)::int as total from members where organization_id = ${org.id}`;
    const [gm] = await raw`select count(*)::int as n from group_members gm join groups g on g.id = gm.group_id where g.organization_id = ${org.id}`.catch(() => [{ n: NaN }]);
    console.log(`database: members ${JSON.stringify(counts)}, group memberships ${gm!.n}`);

    // ---- table ----
    const overall = Math.max(...rows.map((r) => (Number.isNaN(r.peakMb) ? 0 : r.peakMb)));
    console.log('');
    console.log(`Figures: ${USERS} users, ${GROUPS} groups, ${GROUPS * Math.min(PER_GROUP, USERS)} member values; node ${process.version}; ${(await import('node:os')).cpus().length} CPUs`);
    const line = (cols: string[]) => console.log(cols.map((c, i) => (i === 0 ? c.padEnd(26) : c.padStart(i === 5 ? 14 : 10))).join(' '));
    line(['phase', 'seconds', '× floor', 'CPU s', 'peak RSS MB', 'goal', 'met']);
    line(['-'.repeat(26), '-'.repeat(10), '-'.repeat(10), '-'.repeat(10), '-'.repeat(10), '-'.repeat(14), '-'.repeat(10)]);
    for (const r of rows) {
      line([
        r.phase,
        r.seconds.toFixed(2),
        (r.seconds / floor).toFixed(1),
        r.cpuSeconds === undefined ? '' : r.cpuSeconds.toFixed(2),
        Number.isNaN(r.peakMb) ? '—' : r.peakMb.toFixed(0),
        r.goal?.text ?? '',
        r.goal ? (r.goal.met ? 'met' : 'MISSED') : '',
      ]);
    }
    line(['peak RSS, all phases', '', '', '', overall.toFixed(0), '≤ 256 MB', overall <= 256 ? 'met' : 'MISSED']);
    if (!hwmResettable) console.log('(VmHWM could not be reset per phase: peaks are from 50 ms samples)');
  } finally {
    await raw.end();
    await drop();
    await slapd.stop();
  }
}

await main();
