/**
 * SCIM benchmark against PostgreSQL (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local
 * 127.0.0.1:5432/test; a fresh database is created and dropped).
 *
 * Prints, next to baselines measured in the same run on the same database:
 *  - SCIM user creates per second (POST /Users through the real app) vs raw single-row insert transactions;
 *  - p50/p99 of `userName eq` lookups vs an indexed raw lookup, with 1k, 10k and 100k members;
 *  - p50/p99 of 100-item pages (GET /Users?startIndex=…&count=100).
 * Usage: npm run bench [-- --sizes=1000,10000,100000 --creates=500 --lookups=400 --pages=100]
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
const sizes = (args.sizes ?? '1000,10000,100000').split(',').map(Number);
const CREATES = Number(args.creates ?? 500);
const LOOKUPS = Number(args.lookups ?? 400);
const PAGES = Number(args.pages ?? 100);
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
    const call = (method: string, path: string, token: string, body?: unknown) =>
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
      const scim = await (await engine.organization(org.id, principal)).issueScimKey();
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
    const createOrg = await newOrg('creates', CREATES + 10);
    const creates = await timeEach(CREATES, async (i) => {
      await call('POST', `/scim/v2/${createOrg.id}/Users`, createOrg.scim, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName: `new${i}@bench.example`,
        externalId: `new-${i}`,
        name: { givenName: 'New', familyName: `User ${i}` },
        emails: [{ value: `new${i}@bench.example`, type: 'work', primary: true }],
        active: true,
      });
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

    // ---- lookups and pages at each size ------------------------------------------------------
    console.log('size     | raw lookup p50/p99 | SCIM userName eq p50/p99 | SCIM 100-item page p50/p99');
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
          `${fmt(percentile(lookups, 50))} / ${fmt(percentile(lookups, 99))} | ` +
          `${fmt(percentile(pages, 50))} / ${fmt(percentile(pages, 99))}`,
      );
    }
    agent.destroy();
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
