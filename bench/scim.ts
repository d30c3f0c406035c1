/**
 * SCIM benchmark against PostgreSQL (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local
 * 127.0.0.1:5432/test; a fresh database is created and dropped).
 *
 * Prints, next to baselines measured in the same run on the same database:
 *  - SCIM user creates per second (POST /Users through the real app) vs raw single-row insert transactions;
 *  - concurrent creates: 8 clients into one organization, and 8 organizations × 4 clients, each
 *    as a ratio to the sequential SCIM create rate (issue 9: 8 clients into one organization ≥ 2×);
 *  - group PATCH adding one member to a group of 0 and of 5,000 members, the second as a ratio to
 *    the first (issue 9: flat, ≤ 1.2×);
 *  - p50/p99 of `userName eq` lookups vs an indexed raw lookup, with 1k and 100k members;
 *  - p50/p99 of 100-item pages (GET /Users?startIndex=…&count=100).
 * Usage: npm run bench [-- --sizes=1000,100000 --creates=500 --concurrent=800 --patches=300 --lookups=400 --pages=100]
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import postgres from 'postgres';
import { createApp } from '../src/app.js';
import { createEngine } from '../src/membership/index.js';
import { benchArgs, createBenchDatabase } from './support.js';

const args = benchArgs();
const sizes = (args.sizes ?? '1000,100000').split(',').map(Number);
const CREATES = Number(args.creates ?? 500);
const LOOKUPS = Number(args.lookups ?? 400);
const PAGES = Number(args.pages ?? 100);
const CONCURRENT = Number(args.concurrent ?? 800);
const PATCHES = Number(args.patches ?? 300);
const GROUP_SIZE = 5_000;
const SYSTEM_TOKEN = `bench-${randomBytes(24).toString('hex')}`;
const ENCRYPTION_KEY = randomBytes(32).toString('base64');


function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

async function timeEach(n: number, work: (i: number) => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await work(i);
    samples.push(performance.now() - start);
  }
  return samples;
}

async function main() {
  const { database, name, url, drop } = await createBenchDatabase();
  const raw = postgres(url, { max: 4, onnotice: () => {} });
  const clientAgents: Agent[] = [];
  try {
    const engine = createEngine(
      { db: database.db, clock: () => new Date(), publicUrl: 'http://bench.local', encryptionKey: ENCRYPTION_KEY },
      { systemToken: SYSTEM_TOKEN },
    );
    const app = createApp({ engine, database, logger: pino({ level: 'silent' }), publicUrl: 'http://bench.local', bodyLimit: '100kb' });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    // node:http with keep-alive, as an IdP's client would hold its connection.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const { port } = server.address() as AddressInfo;
    const callWith = (agent: Agent, method: string, path: string, token: string, body?: unknown) =>
      new Promise<Record<string, unknown> | undefined>((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method,
            path,
            agent,
            headers: {
              authorization: `Bearer ${token}`,
              ...(payload ? { 'content-type': 'application/scim+json', 'content-length': Buffer.byteLength(payload) } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              if ((res.statusCode ?? 500) >= 300) return reject(new Error(`${method} ${path} → ${res.statusCode} ${text}`));
              resolve(text ? (JSON.parse(text) as Record<string, unknown>) : undefined);
            });
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    const call = (method: string, path: string, token: string, body?: unknown) => callWith(agent, method, path, token, body);

    // A provider and its admin, through the engine.
    const provider = await engine.createProvider({ kind: 'system' }, { name: 'Bench MSP', adminEmail: 'admin@bench.example' });
    // Mail bodies are sealed at rest; the operator's outbox opens them.
    const [mail] = await engine.listOutbox({ kind: 'system' }, { recipient: 'admin@bench.example' });
    const setupToken = new URL(mail!.text.match(/https?:\/\/\S+/)![0]).searchParams.get('token')!;
    const { apiToken } = await engine.completeProviderSetup({ token: setupToken });
    const principal = await engine.authenticate(apiToken);
    const providerHandle = await engine.provider(provider.id, principal);

    const newOrg = async (label: string, seats: number) => {
      const org = await providerHandle.createClient({ name: label, plan: 'enterprise', seats });
      const scim = await (await engine.organization(org.id, principal)).issueScimKey('enable');
      return { id: org.id, scim };
    };

    console.log(`PostgreSQL ${(await raw`show server_version`)[0]!.server_version}, database ${name}`);
    console.log('');

    // ---- creates ----------------------------------------------------------------------------
    await raw`create table bench_raw (id uuid primary key, organization_id uuid not null, email text not null, created_at timestamptz not null)`;
    await raw`create unique index on bench_raw (organization_id, lower(email))`;
    const rawOrg = (await newOrg('raw', 10)).id;
    const rawInsert = await timeEach(CREATES, async (i) => {
      await raw.begin((tx) => tx`insert into bench_raw values (gen_random_uuid(), ${rawOrg}, ${`raw${i}@bench.example`}, now())`);
    });
    // The same writes as a SCIM create, in raw SQL: lock the organization, insert the member, move
    // the seat counter, insert the invitation, the mail and the event, commit.
    const sameOrg = (await newOrg('raw same writes', CREATES + 10)).id;
    const rawSame = await timeEach(CREATES, async (i) => {
      await raw.begin(async (tx) => {
        await tx`select seats, seats_used from organizations where id = ${sameOrg} for update`;
        const [member] = await tx`
          insert into members (organization_id, id, email, external_id, role, status, profile, created_at, updated_at)
          values (${sameOrg}, gen_random_uuid(), ${`same${i}@bench.example`}, ${`same-${i}`}, 'user', 'invited',
                  ${tx.json({ userName: `same${i}@bench.example` })}, now(), now())
          returning id`;
        await tx`update organizations set seats_used = seats_used + 1 where id = ${sameOrg}`;
        await tx`insert into invitations (id, kind, token_hash, email, organization_id, member_id, expires_at, created_at)
                 values (gen_random_uuid(), 'member', ${randomBytes(32).toString('hex')}, ${`same${i}@bench.example`}, ${sameOrg}, ${member!.id}, now() + interval '5 days', now())`;
        await tx`insert into outbox (id, recipient, subject, body, next_attempt_at, created_at)
                 values (gen_random_uuid(), ${`same${i}@bench.example`}, 'Join', 'link', now(), now())`;
        await tx`insert into events (id, type, code, date, actor_system, organization_id, member_id)
                 values (gen_random_uuid(), 'member.invited', 1500, now(), 'scim', ${sameOrg}, ${member!.id})`;
      });
    });
    const userDocument = (label: string) => ({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: `${label}@bench.example`,
      externalId: label,
      name: { givenName: 'New', familyName: `User ${label}` },
      emails: [{ value: `${label}@bench.example`, type: 'work', primary: true }],
      active: true,
    });
    const createOrg = await newOrg('creates', CREATES + 10);
    const creates = await timeEach(CREATES, async (i) => {
      await call('POST', `/scim/v2/${createOrg.id}/Users`, createOrg.scim, userDocument(`new${i}`));
    });
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const rawRate = (CREATES / sum(rawInsert)) * 1000;
    const createRate = (CREATES / sum(creates)) * 1000;
    console.log(`creates (${CREATES}, sequential)`);
    console.log(`  baseline raw single-row insert transactions: ${rawRate.toFixed(0)}/s (p50 ${fmt(percentile(rawInsert, 50))})`);
    console.log(`  SCIM POST /Users (member, invitation, mail, event):  ${createRate.toFixed(0)}/s (p50 ${fmt(percentile(creates, 50))})`);
    const sameRate = (CREATES / sum(rawSame)) * 1000;
    console.log(`  raw SQL doing the same writes (lock, 4 inserts, 1 update): ${sameRate.toFixed(0)}/s (p50 ${fmt(percentile(rawSame, 50))})`);
    console.log(`  ratio SCIM/raw single-row: ${(createRate / rawRate).toFixed(2)} (goal >= 0.5); SCIM/raw same writes: ${(createRate / sameRate).toFixed(2)}`);
    console.log('');

    // ---- concurrent creates ------------------------------------------------------------------
    // Each client holds its own keep-alive connection and sends its next create when the last is
    // answered, as an IdP's provisioning worker does.
    const concurrent = async (orgs: { id: string; scim: string }[], clientsPerOrg: number, label: string) => {
      const clients = orgs.flatMap((org, o) => Array.from({ length: clientsPerOrg }, (_, c) => ({ org, name: `${label}-${o}-${c}` })));
      const perClient = Math.ceil(CONCURRENT / clients.length);
      const agents = clients.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
      clientAgents.push(...agents);
      const samples: number[] = [];
      const start = performance.now();
      await Promise.all(
        clients.map(async (client, k) => {
          for (let i = 0; i < perClient; i++) {
            const t0 = performance.now();
            await callWith(agents[k]!, 'POST', `/scim/v2/${client.org.id}/Users`, client.org.scim, userDocument(`${client.name}-${i}`));
            samples.push(performance.now() - t0);
          }
        }),
      );
      const rate = (samples.length / (performance.now() - start)) * 1000;
      return { rate, p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length };
    };
    const oneOrg = await newOrg('8 clients', CONCURRENT + 10);
    const eightByOne = await concurrent([oneOrg], 8, 'c8');
    const eightOrgs = await Promise.all(Array.from({ length: 8 }, (_, o) => newOrg(`8x4 ${o}`, CONCURRENT + 10)));
    const eightByFour = await concurrent(eightOrgs, 4, 'c32');
    console.log(`concurrent creates (${CONCURRENT} each), ratio to the sequential SCIM rate (${createRate.toFixed(0)}/s)`);
    for (const [label, r, goal] of [
      ['8 clients into one organization', eightByOne, ' (goal >= 2)'],
      ['8 organizations x 4 clients    ', eightByFour, ''],
    ] as const) {
      console.log(
        `  ${label}: ${r.rate.toFixed(0)}/s, p50 ${fmt(r.p50)}, p99 ${fmt(r.p99)}; ratio ${(r.rate / createRate).toFixed(2)}${goal}`,
      );
    }
    console.log('');

    // ---- group PATCH at 0 and 5,000 members --------------------------------------------------
    const groupOrg = await newOrg('groups', GROUP_SIZE + 2 * PATCHES + 10);
    // Members seeded in SQL (the write path under test is the PATCH).
    const seeded = await raw<{ id: string }[]>`
      insert into members (organization_id, id, email, external_id, role, status, profile, created_at, updated_at)
      select ${groupOrg.id}, gen_random_uuid(), 'g' || i || '@bench.example', 'g-' || i, 'user', 'invited',
             jsonb_build_object('userName', 'g' || i || '@bench.example'), now(), now()
      from generate_series(1, ${GROUP_SIZE + 2 * PATCHES}) as i
      returning id`;
    const memberIds = seeded.map((r) => r.id);
    const newGroup = async (name: string) =>
      (await call('POST', `/scim/v2/${groupOrg.id}/Groups`, groupOrg.scim, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
        displayName: name,
        members: [],
      }))!.id as string;
    const emptyGroup = await newGroup('empty');
    const bigGroup = await newGroup('big');
    await raw`
      insert into group_members (organization_id, group_id, member_id)
      select ${groupOrg.id}, ${bigGroup}, id from unnest(${raw.array(memberIds.slice(0, GROUP_SIZE))}::uuid[]) as id`;
    await raw`analyze group_members`;
    const addOne = (groupId: string, memberId: string) =>
      call('PATCH', `/scim/v2/${groupOrg.id}/Groups/${groupId}`, groupOrg.scim, {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'add', path: 'members', value: [{ value: memberId }] }],
      });
    // Alternating, so both groups see the same load; each PATCH adds a member not yet in the group.
    const small: number[] = [];
    const large: number[] = [];
    const spare = memberIds.slice(GROUP_SIZE);
    for (let i = 0; i < 10; i++) await addOne(emptyGroup, spare[i]!);
    for (let i = 10; i < PATCHES + 10 && i < spare.length; i++) {
      let t0 = performance.now();
      await addOne(emptyGroup, spare[i]!);
      small.push(performance.now() - t0);
      t0 = performance.now();
      await addOne(bigGroup, spare[i]!);
      large.push(performance.now() - t0);
    }
    console.log(`group PATCH adding one member (${small.length} each)`);
    console.log(`  baseline, empty group:  p50 ${fmt(percentile(small, 50))}, p99 ${fmt(percentile(small, 99))}`);
    console.log(
      `  group of ${GROUP_SIZE} members: p50 ${fmt(percentile(large, 50))}, p99 ${fmt(percentile(large, 99))}; ` +
        `ratio p50 ${(percentile(large, 50) / percentile(small, 50)).toFixed(2)} (goal <= 1.2)`,
    );
    console.log('');

    // ---- lookups and pages at each size ------------------------------------------------------
    console.log('size     | raw lookup p50/p99 | SCIM userName eq p50/p99 (ratio p50) | SCIM 100-item page p50/p99');
    for (const size of sizes) {
      const org = await newOrg(`size ${size}`, size + 10);
      // Seeded in SQL: only the read path is under test here.
      await raw`
        insert into members (organization_id, id, email, external_id, role, status, profile, created_at, updated_at)
        select ${org.id}, gen_random_uuid(), 'user' || i || '@bench.example', 'ext-' || i, 'user', 'invited',
               jsonb_build_object('userName', 'user' || i || '@bench.example'),
               now() - interval '1 day' + i * interval '1 millisecond', now()
        from generate_series(1, ${size}) as i`;
      await raw`analyze members`;
      const pick = () => `user${1 + Math.floor(Math.random() * size)}@bench.example`;
      // Warm both paths.
      for (let i = 0; i < 20; i++) {
        await raw`select id from members where organization_id = ${org.id} and lower(email) = ${pick()}`;
        await call('GET', `/scim/v2/${org.id}/Users?filter=${encodeURIComponent(`userName eq "${pick()}"`)}`, org.scim);
      }
      const rawLookup = await timeEach(LOOKUPS, async () => {
        const rows = await raw`select * from members where organization_id = ${org.id} and lower(email) = ${pick()}`;
        if (rows.length !== 1) throw new Error('raw lookup missed');
      });
      const lookups = await timeEach(LOOKUPS, async () => {
        const body = await call('GET', `/scim/v2/${org.id}/Users?filter=${encodeURIComponent(`userName eq "${pick()}"`)}`, org.scim);
        if (body?.totalResults !== 1) throw new Error('SCIM lookup missed');
      });
      const pages = await timeEach(PAGES, async () => {
        const startIndex = 1 + Math.floor(Math.random() * Math.max(1, size - 100));
        const body = await call('GET', `/scim/v2/${org.id}/Users?startIndex=${startIndex}&count=100`, org.scim);
        if ((body?.Resources as unknown[]).length !== 100) throw new Error('short page');
      });
      console.log(
        `${String(size).padEnd(8)} | ${fmt(percentile(rawLookup, 50))} / ${fmt(percentile(rawLookup, 99))} | ` +
          `${fmt(percentile(lookups, 50))} / ${fmt(percentile(lookups, 99))} (${(percentile(lookups, 50) / percentile(rawLookup, 50)).toFixed(2)}) | ` +
          `${fmt(percentile(pages, 50))} / ${fmt(percentile(pages, 99))}`,
      );
    }
    agent.destroy();
    for (const a of clientAgents) a.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  } finally {
    await raw.end();
    await drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
