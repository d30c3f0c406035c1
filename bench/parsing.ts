/**
 * What hostile input costs the server, beside a normal request (issue 6, point 2). The real app
 * runs on an in-memory PGlite; each request is sent N times in sequence over one keep-alive
 * connection, and its p50/p99 are printed with their ratio to a normal PATCH's. Each answer's
 * status is checked, so the figures are for the refusal they name.
 *
 *  - backslash path: a value filter with a 184-backslash unterminated string (201 bytes), which
 *    scimmy 1.3.5's lexer takes exponential time over;
 *  - 80 KB of dots, 80 KB of brackets: paths scimmy splits in quadratic time;
 *  - 3,000-deep body: a PATCH value nested 3,000 arrays deep (a stack overflow, once);
 *  - 4 KB filter: `filter=` past its 2,000-character cap.
 *
 * Usage: npm run bench:parsing [-- --n=200]
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { createApp } from '../src/app.js';
import { openDatabase } from '../src/db/index.js';
import { createEngine } from '../src/membership/index.js';
import { benchArgs } from './support.js';

const args = benchArgs();
const N = Number(args.n ?? 200);
const WARMUP = 20;
const SYSTEM_TOKEN = `bench-${randomBytes(24).toString('hex')}`;
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

interface Answer {
  status: number;
  body: any;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main() {
  const database = await openDatabase({ dataDir: 'memory://' });
  await database.migrate();
  const publicUrl = 'http://bench.local';
  const engine = createEngine(
    { db: database.db, clock: () => new Date(), publicUrl, encryptionKey: randomBytes(32).toString('base64') },
    { systemToken: SYSTEM_TOKEN },
  );
  const app = createApp({ engine, database, logger: pino({ level: 'silent' }), publicUrl, bodyLimit: '100kb' });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const { port } = server.address() as AddressInfo;
  // One keep-alive connection, as an IdP's client would hold it.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  const call = (method: string, path: string, options: { token?: string; raw?: string } = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          agent,
          headers: {
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            ...(options.raw !== undefined ? { 'content-type': 'application/scim+json', 'content-length': Buffer.byteLength(options.raw) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
          });
        },
      );
      req.on('error', reject);
      req.end(options.raw);
    });
  const must = async (answer: Promise<Answer>, status: number, what: string) => {
    const { status: got, body } = await answer;
    if (got !== status) throw new Error(`${what}: expected ${status}, got ${got} ${JSON.stringify(body)}`);
    return body;
  };

  try {
    // A provider, a client organization with SCIM on, and one user, through the public API.
    const adminEmail = 'admin@bench.example';
    const provider = await must(
      call('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, raw: JSON.stringify({ name: 'Bench MSP', adminEmail }) }),
      201,
      'create provider',
    );
    const outbox = await must(call('GET', `/api/v1/outbox?recipient=${encodeURIComponent(adminEmail)}`, { token: SYSTEM_TOKEN }), 200, 'read the outbox');
    const setupToken = new URL(outbox.data[0].text.match(/https?:\/\/\S+/)[0]).searchParams.get('token');
    const { apiToken } = await must(call('POST', '/api/v1/providers/setup', { raw: JSON.stringify({ token: setupToken }) }), 200, 'setup');
    const client = await must(
      call('POST', `/api/v1/providers/${provider.id}/clients`, { token: apiToken, raw: JSON.stringify({ name: 'Bench client', plan: 'teams', seats: 50 }) }),
      201,
      'create client',
    );
    const scim = await must(call('POST', `/api/v1/organizations/${client.id}/scim`, { token: apiToken }), 200, 'enable SCIM');
    const base = `/scim/v2/${client.id}`;
    const user = await must(
      call('POST', `${base}/Users`, { token: scim.token, raw: JSON.stringify({ userName: 'user@bench.example', emails: [{ value: 'user@bench.example', type: 'work' }] }) }),
      201,
      'create user',
    );

    const patch = (operation: Record<string, unknown>) => JSON.stringify({ schemas: [PATCH_OP], Operations: [operation] });
    const deep = `${'['.repeat(3000)}${']'.repeat(3000)}`;
    let flip = 0;
    const cases: { label: string; method: string; path: () => string; raw?: () => string; status: number; scimType?: string }[] = [
      // Alternates, so every normal PATCH writes (an unchanged one would skip the update).
      { label: 'normal PATCH (replace title)', method: 'PATCH', path: () => `${base}/Users/${user.id}`, raw: () => patch({ op: 'replace', path: 'title', value: `T${flip++ % 2}` }), status: 200 },
      {
        label: 'normal PATCH (emails[type eq "work"].value)',
        method: 'PATCH',
        path: () => `${base}/Users/${user.id}`,
        raw: () => patch({ op: 'replace', path: 'emails[type eq "work"].value', value: `w${flip++ % 2}@bench.example` }),
        status: 200,
      },
      {
        // Value-path operations are applied by Portico, the others by scimmy: alternating costs no more.
        label: '1,000-operation PATCH (alternating kinds)',
        method: 'PATCH',
        path: () => `${base}/Users/${user.id}`,
        raw: () =>
          JSON.stringify({
            schemas: [PATCH_OP],
            Operations: Array.from({ length: 1000 }, (_, i) =>
              i % 2 === 0
                ? { op: 'replace', path: 'emails[type eq "work"].display', value: `d${i}` }
                : { op: 'replace', path: 'title', value: `T${flip++ % 2}-${i}` },
            ),
          }),
        status: 200,
      },
      { label: 'normal GET (userName eq filter)', method: 'GET', path: () => `${base}/Users?filter=${encodeURIComponent('userName eq "user@bench.example"')}`, status: 200 },
      {
        label: 'backslash path (201 characters)',
        method: 'PATCH',
        path: () => `${base}/Users/${user.id}`,
        raw: () => patch({ op: 'replace', path: `emails[type eq "${'\\'.repeat(184)}]`, value: 'x' }),
        status: 400,
        scimType: 'invalidPath',
      },
      { label: '80 KB path of dots', method: 'PATCH', path: () => `${base}/Users/${user.id}`, raw: () => patch({ op: 'replace', path: '.'.repeat(80_000), value: 'x' }), status: 400, scimType: 'invalidPath' },
      { label: '80 KB path of brackets', method: 'PATCH', path: () => `${base}/Users/${user.id}`, raw: () => patch({ op: 'replace', path: '['.repeat(80_000), value: 'x' }), status: 400, scimType: 'invalidPath' },
      {
        label: '3,000-deep body',
        method: 'PATCH',
        path: () => `${base}/Users/${user.id}`,
        raw: () => `{"schemas":["${PATCH_OP}"],"Operations":[{"op":"replace","path":"title","value":${deep}}]}`,
        status: 400,
        scimType: 'invalidSyntax',
      },
      { label: '4 KB filter', method: 'GET', path: () => `${base}/Users?filter=${encodeURIComponent(`userName eq "${'a'.repeat(4_080)}"`)}`, status: 400, scimType: 'invalidFilter' },
    ];

    const rows: { label: string; bytes: number; p50: number; p99: number }[] = [];
    for (const c of cases) {
      const once = async () => {
        const { status, body } = await call(c.method, c.path(), { token: scim.token, ...(c.raw ? { raw: c.raw() } : {}) });
        if (status !== c.status || (c.scimType && body?.scimType !== c.scimType)) {
          throw new Error(`${c.label}: expected ${c.status} ${c.scimType ?? ''}, got ${status} ${JSON.stringify(body).slice(0, 300)}`);
        }
      };
      for (let i = 0; i < WARMUP; i++) await once();
      const samples: number[] = [];
      for (let i = 0; i < N; i++) {
        const start = performance.now();
        await once();
        samples.push(performance.now() - start);
      }
      const bytes = c.raw ? Buffer.byteLength(c.raw()) : Buffer.byteLength(c.path());
      rows.push({ label: c.label, bytes, p50: percentile(samples, 50), p99: percentile(samples, 99) });
    }

    const normal = rows[0]!;
    const ms = (v: number) => `${v.toFixed(2)} ms`.padStart(10);
    const ratio = (v: number, of: number) => `${(v / of).toFixed(2)}x`.padStart(8);
    console.log(`Node ${process.version}, PGlite in memory; ${N} sequential requests each after ${WARMUP} warm-up, one keep-alive connection`);
    console.log(`${'request'.padEnd(44)} ${'bytes'.padStart(7)} ${'p50'.padStart(10)} ${'p99'.padStart(10)} ${'p50/norm'.padStart(8)} ${'p99/norm'.padStart(8)}`);
    for (const r of rows) {
      console.log(`${r.label.padEnd(44)} ${String(r.bytes).padStart(7)} ${ms(r.p50)} ${ms(r.p99)} ${ratio(r.p50, normal.p50)} ${ratio(r.p99, normal.p99)}`);
    }
    console.log('bytes: the request body, or for a GET its path and query; norm: the normal PATCH (replace title)');
  } finally {
    agent.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await database.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
