/**
 * Hostile input for the fuzz suites (fast-check arbitraries), a raw request that can send bytes
 * and headers fetch-helpers would tidy up, and a digest of every table to assert that a refused
 * request changed nothing.
 */
import { gzipSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { expect } from 'vitest';
import type { TestApp } from './app.js';

/** One fixed seed, so a failure reproduces; fast-check prints the path to replay it. */
export const FUZZ_SEED = 20_260_301;

/** A JSON value written as raw text, so numbers JSON.stringify cannot produce (1e309, -0) can be sent. */
export interface RawJson {
  raw: string;
  /** How the value was made, for failure messages. */
  label: string;
}

const json = (value: unknown, label: string): RawJson => ({ raw: JSON.stringify(value), label });

/** Text PostgreSQL cannot hold (NUL) or that has no UTF-8 form (an unpaired surrogate). */
export const nulText = fc
  .tuple(fc.string({ maxLength: 6 }), fc.constantFrom('\u0000', '\u0000\u0000', 'a\u0000@example.test'), fc.string({ maxLength: 6 }))
  .map(([a, nul, b]) => `${a}${nul}${b}`);
export const loneSurrogateText = fc
  .tuple(fc.string({ maxLength: 6 }), fc.constantFrom('\ud800', '\udfff', '\udbff', '\udc00x'), fc.string({ maxLength: 6 }))
  .map(([a, s, b]) => `${a}${s}${b}`);
/** Longer than any text field of the API (the longest takes 500). */
export const longText = fc.integer({ min: 501, max: 20_000 }).map((n) => 'x'.repeat(n));
export const hostileText = fc.oneof(nulText, loneSurrogateText, longText);

/** Dates PostgreSQL (through either driver) cannot store, or that are no dates at all. */
export const HOSTILE_DATES = [
  '99999-01-01T00:00:00Z',
  '+275760-09-13T00:00:00Z',
  '-271821-04-20T00:00:00Z',
  '+010000-01-01T00:00:00Z',
  '-000001-01-01T00:00:00Z',
  '-004713-11-24T00:00:00Z',
  '0000-01-01',
  '0000-12-31T23:59:59Z',
  '2026-02-30',
  '2026-13-01',
  '1700000000',
  '8640000000000001',
  'Infinity',
  'NaN',
];

const protoValues = [
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '[{"__proto__":{"polluted":"yes"}}]',
  '{"prototype":{"polluted":"yes"}}',
];

/** Any JSON value a hostile client may put in a field. */
export const hostileJsonValue: fc.Arbitrary<RawJson> = fc.oneof(
  { weight: 4, arbitrary: hostileText.map((s) => json(s, 'hostile text')) },
  { weight: 2, arbitrary: hostileText.map((s) => json([s], '[hostile text]')) },
  { weight: 1, arbitrary: hostileText.map((s) => json([{ id: s, readOnly: false }], '[{id: hostile text}]')) },
  { weight: 1, arbitrary: hostileText.map((s) => json({ value: s }, '{value: hostile text}')) },
  { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_DATES).map((d) => json(d, 'hostile date')) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<unknown>(true, false, 0, -1, 2 ** 53, -(2 ** 53), 1e308, -1e308, 0.5, {}, [], [[]], [null], '', ' ')
      .map((v) => json(v, 'wrong type')),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom('1e309', '-1e309', '-0', '1e-400', '123456789012345678901234567890', '9007199254740993', '-2147483649', '4294967296')
      .map((raw) => ({ raw, label: 'extreme number' })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('array', 'object'), fc.integer({ min: 100, max: 10_000 }))
      .map(([kind, depth]) =>
        kind === 'array'
          ? { raw: `${'['.repeat(depth)}${']'.repeat(depth)}`, label: `array ${depth} deep` }
          : { raw: `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`, label: `object ${depth} deep` },
      ),
  },
  { weight: 2, arbitrary: fc.constantFrom(...protoValues).map((raw) => ({ raw, label: 'prototype key' })) },
);

/** Keys no schema knows, some of which would pollute a prototype if merged naively. */
export const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'a\u0000b', '\u0000', '\ud800', ''),
  fc.string({ minLength: 1, maxLength: 40 }).map((s) => `zz${s}`),
);

/** Percent-encoded bytes that are not UTF-8, or not percent-encoding at all: express cannot decode them. */
export const MALFORMED_ESCAPES = ['%E0%A4%A', '%', '%%', '%zz', '%ED%A0%80', '%C0%80', '%FF%FE', '%F4%90%80%80', '%u0000', 'a%E0b'];

/** A raw (already encoded) path segment or query value a hostile client may send. */
export const hostileUrlText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...MALFORMED_ESCAPES) },
  { weight: 2, arbitrary: fc.constantFrom('%00', 'a%00b', '%00%00', '%0A', '%2F', '%5C', '%25', '%20%09') },
  {
    weight: 3,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 12 })
      .map((bytes) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('')),
  },
  { weight: 1, arbitrary: fc.integer({ min: 501, max: 6_000 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'null', 'undefined', '-1', '1e309', 'NaN') },
);

/** A body that must fail before any handler runs: not JSON, bad gzip or deflate, a bomb, an odd encoding. */
export interface RawBody {
  label: string;
  body: Buffer;
  headers: Record<string, string>;
}

/** 2 MB of spaces in 2 kB: inflated past any body limit. */
let gzipBomb: Buffer | undefined;

export function garbageBody(contentType: string, sample: string): fc.Arbitrary<RawBody> {
  const bytes = (label: string, body: Buffer, headers: Record<string, string> = {}): RawBody => ({
    label,
    body,
    headers: { 'content-type': contentType, ...headers },
  });
  const validGzip = gzipSync(Buffer.from(sample));
  return fc.oneof(
    fc.string({ maxLength: 200 }).map((s) => bytes('not JSON', Buffer.from(`x${s}`))),
    fc.uint8Array({ maxLength: 200 }).map((b) => bytes('gzip garbage', Buffer.concat([Buffer.from('nogzip'), b]), { 'content-encoding': 'gzip' })),
    fc.uint8Array({ maxLength: 200 }).map((b) => bytes('deflate garbage', Buffer.concat([Buffer.from([0xff, 0xff]), b]), { 'content-encoding': 'deflate' })),
    fc
      .integer({ min: 1, max: Math.max(1, validGzip.length - 1) })
      .map((n) => bytes(`gzip cut at ${n}`, validGzip.subarray(0, n), { 'content-encoding': 'gzip' })),
    fc.constant(bytes('gzip with a wrong checksum', corruptTrailer(validGzip), { 'content-encoding': 'gzip' })),
    fc.constant(bytes('gzip bomb', (gzipBomb ??= gzipSync(Buffer.alloc(2_000_000, 0x20))), { 'content-encoding': 'gzip' })),
    fc.constantFrom('br', 'compress', 'x-garbage', 'gzip, gzip').map((e) => bytes(`content-encoding ${e}`, Buffer.from('{}'), { 'content-encoding': e })),
    fc.constantFrom('utf-7', 'klingon', 'utf-32').map((c) => bytes(`charset ${c}`, Buffer.from('{}'), { 'content-type': `${contentType}; charset=${c}` })),
  );
}

/** A gzip stream whose CRC no longer matches its content. */
function corruptTrailer(gzip: Buffer): Buffer {
  const copy = Buffer.from(gzip);
  copy[copy.length - 8] = (copy[copy.length - 8] ?? 0) ^ 0xff;
  return copy;
}

export interface RawResponse {
  status: number;
  contentType: string;
  body: any;
  text: string;
}

/** Sends exactly `path` (not re-encoded) with a raw body and headers. */
export async function rawRequest(
  t: TestApp,
  method: string,
  path: string,
  options: { token?: string | undefined; body?: Buffer | string | undefined; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const body = typeof options.body === 'string' || options.body === undefined ? options.body : new Uint8Array(options.body);
  const res = await fetch(`${t.url}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* kept as text */
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: parsed, text };
}

/**
 * Every table of the database as `rows:hash` (API tokens without their last use, which a request
 * that authenticates moves): equal digests mean nothing changed.
 */
export async function digestDatabase(t: TestApp): Promise<Record<string, string>> {
  const db = t.testDb.database.db;
  let query = digestQueries.get(t);
  if (!query) {
    const tables = rowsOf(
      await db.execute(sql`select tablename from pg_tables where schemaname = 'public' order by 1`),
    ).map((r) => String(r.tablename));
    // An order-free sum of row hashes: half the cost of md5 over sorted rows, and as telling here.
    const columns = tables.map(
      (name) => `(select count(*) || ':' || coalesce(sum(hashtext((to_jsonb(t) - 'last_used_at')::text)), 0) from "${name}" t) as "${name}"`,
    );
    query = sql.raw(`select ${columns.join(', ')}`);
    digestQueries.set(t, query);
  }
  const [digest] = rowsOf(await db.execute(query));
  return Object.fromEntries(Object.entries(digest ?? {}).map(([k, v]) => [k, String(v)]));
}

const digestQueries = new WeakMap<TestApp, ReturnType<typeof sql.raw>>();

function rowsOf(result: unknown): Record<string, unknown>[] {
  return (Array.isArray(result) ? result : (result as { rows: Record<string, unknown>[] }).rows) as Record<string, unknown>[];
}

/** Words of database and library errors that must never reach a client. */
const INTERNAL_TEXT =
  /Failed to decode param|incorrect header check|unexpected end of file|invalid (stored|distance|code|block)|incorrect data check|header check|invalid byte sequence|unsupported Unicode escape|time zone displacement|date\/time field value|invalid input syntax|SQLSTATE|stack depth|at .*\.(ts|js):\d+/i;

export function expectNoInternalText(text: string): void {
  expect(text).not.toMatch(INTERNAL_TEXT);
}

/** Nothing a request sent may reach Object.prototype (the app runs in this process). */
export function expectPrototypeClean(): void {
  const probe = {} as Record<string, unknown>;
  expect(probe.polluted).toBeUndefined();
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
}
