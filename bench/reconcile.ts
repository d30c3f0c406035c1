/**
 * Reconcile write-side benchmark against PostgreSQL (BENCH_DATABASE_URL, else TEST_DATABASE_URL,
 * else the local 127.0.0.1:5432/test; a fresh database is created and dropped). No LDAP: the
 * snapshot is generated in memory, so this measures the diff and the bulk writes only (the read
 * side is the connectors' bench).
 *
 * Prints: a first sync of N users in G groups (invites + invitations + mails + events), a no-change
 * resync, and a 1%-change resync (email changes, disables, new users).
 * Usage: npx tsx bench/reconcile.ts [--users=10000 --groups=100]
 */
import { performance } from 'node:perf_hooks';
import { createEngine } from '../src/membership/index.js';
import { reconcile } from '../src/sync/reconcile.js';
import type { DirectorySnapshot, DirectoryUser } from '../src/sync/source.js';
import { benchArgs, createBenchDatabase } from './support.js';

const args = benchArgs();
const USERS = Number(args.users ?? 10_000);
const GROUPS = Number(args.groups ?? 100);
const ENCRYPTION_KEY = 'bench-encryption-key-0123456789abcdef0123456789';
const OPTIONS = { disabledUsers: 'revoke', removeMissing: true, shrinkGuardPercent: 10, largeImport: true, dryRun: false } as const;

function directory(users: number, groups: number, change = 0): DirectorySnapshot {
  const list: DirectoryUser[] = Array.from({ length: users }, (_, i) => ({
    externalId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    dn: `uid=user${i},ou=people,dc=bench,dc=example`,
    email: `user${i}@bench.example`,
    name: `User ${i}`,
    disabled: false,
  }));
  // A 1% change: a third renamed mailboxes, a third disabled, a third new people.
  const n = Math.round((users * change) / 3);
  for (let i = 0; i < n; i++) list[i * 3] = { ...list[i * 3]!, email: `renamed${i}@bench.example` };
  for (let i = 0; i < n; i++) list[i * 3 + 1] = { ...list[i * 3 + 1]!, disabled: true };
  for (let i = 0; i < n; i++) {
    list.push({ externalId: `new-${i}`, dn: `uid=new${i}`, email: `new${i}@bench.example`, name: null, disabled: false });
  }
  return {
    users: list,
    groups: Array.from({ length: groups }, (_, g) => ({
      externalId: `group-${g}`,
      dn: `cn=group${g},ou=groups,dc=bench,dc=example`,
      name: `Group ${g}`,
      memberExternalIds: list.filter((_, i) => i % groups === g).map((u) => u.externalId),
      groupExternalIds: [],
    })),
    warnings: [],
  };
}

async function main() {
  const { database, drop } = await createBenchDatabase();
  try {
    const engine = createEngine({ db: database.db, clock: () => new Date(), publicUrl: 'http://bench.local', encryptionKey: ENCRYPTION_KEY });
    const provider = await engine.createProvider({ kind: 'system' }, { name: 'Bench MSP', adminEmail: 'admin@bench.example' });
    const [mail] = await engine.listOutbox({ kind: 'system' }, { recipient: 'admin@bench.example' });
    const setupToken = new URL(mail!.text.match(/https?:\/\/\S+/)![0]).searchParams.get('token')!;
    const { apiToken } = await engine.completeProviderSetup({ token: setupToken });
    const principal = await engine.authenticate(apiToken);
    const org = await (await engine.provider(provider.id, principal)).createClient({ name: 'Bench', plan: 'teams', seats: USERS * 2 });
    const handle = await engine.directorySync(org.id);

    const run = async (label: string, snapshot: DirectorySnapshot) => {
      const start = performance.now();
      const result = await reconcile(handle, snapshot, OPTIONS);
      const ms = performance.now() - start;
      const { read, invited, updated, revoked, groupsCreated, groupsUpdated, problems } = result.counts;
      console.log(
        `${label.padEnd(22)} ${(ms / 1000).toFixed(2).padStart(6)} s  ${result.status}  ` +
          JSON.stringify({ read, invited, updated, revoked, groupsCreated, groupsUpdated, problems }) +
          (invited > 0 ? `  → ${Math.round(invited / (ms / 1000))} invited users/s` : ''),
      );
    };
    console.log(`PostgreSQL, ${USERS} users, ${GROUPS} groups`);
    await run('first sync', directory(USERS, GROUPS));
    await run('no-change resync', directory(USERS, GROUPS));
    await run('1%-change resync', directory(USERS, GROUPS, 0.01));
    console.log(`peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
  } finally {
    await drop();
  }
}

await main();
