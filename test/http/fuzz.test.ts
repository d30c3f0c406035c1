/**
 * Generated hostile input over the whole /api/v1 route table (fast-check, fixed seed): for every
 * route a valid request is built (seeded ids, the route's sample body) and one part of it at a time
 * is made hostile: a body field (named by the route's zod schema), an unknown or prototype key, the
 * whole body (garbage, broken gzip/deflate, a bomb), a path parameter (malformed %-escapes, NUL,
 * stray bytes) or a query parameter (hostile text, dates PostgreSQL cannot store, forged
 * continuation tokens). Whatever happens, the answer is never a 5xx, a refusal is problem+json
 * without internal text, and a refusal changes no row of any table.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apiRoutes } from '../../src/http/api.routes.js';
import type { Route } from '../../src/http/route.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  digestDatabase,
  expectNoInternalText,
  expectPrototypeClean,
  FUZZ_SEED,
  garbageBody,
  HOSTILE_DATES,
  hostileJsonValue,
  hostileKey,
  hostileUrlText,
  rawRequest,
  type RawJson,
} from '../support/hostile.js';
import { fillPath, routeKey, SAMPLE_BODIES, seedRouteIds } from '../support/http-seed.js';

/** Routes only the operator may call; everything else is called as the provider's admin. */
const OPERATOR_ROUTES = new Set(['POST /providers', 'GET /providers', 'POST /providers/:pid/enable', 'POST /providers/:pid/disable', 'GET /outbox']);

interface Mutation {
  label: string;
  path: string;
  body?: Buffer | string;
  headers: Record<string, string>;
}

const paramsOf = (r: Route) => [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
/** The field names of a zod object schema (refinements keep the shape reachable). */
const fieldsOf = (schema: unknown): string[] => Object.keys((schema as { shape?: object } | undefined)?.shape ?? {});

const JSON_TYPE = { 'content-type': 'application/json' };
const MARKER = '\u0001hostile\u0001';

/** The sample body of `r` with `field` set to `value`, as raw JSON text. */
function withField(r: Route, field: string, value: RawJson): string {
  const sample = (SAMPLE_BODIES[routeKey(r)] ?? {}) as Record<string, unknown>;
  const body = { ...sample };
  Object.defineProperty(body, field, { value: MARKER, enumerable: true, configurable: true, writable: true });
  return JSON.stringify(body).replace(JSON.stringify(MARKER), value.raw);
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Continuation tokens as the events and members pages write them, with dates and keys no page wrote. */
const forgedCursor = fc
  .tuple(
    fc.constantFrom<unknown>(...HOSTILE_DATES, '2026-01-01T00:00:00.000Z', 'a\u0000', '\ud800', null, 5),
    fc.constantFrom<unknown>(1, -1, 2 ** 53 - 1, 2 ** 53, 1e20, 0.5, '7', null, '00000000-0000-4000-8000-000000000000', 'x\u0000', [1]),
  )
  .map((pair) => base64url(pair));

const hostileQueryValue = (field: string): fc.Arbitrary<string> =>
  fc.oneof(
    hostileUrlText,
    fc.constantFrom(...HOSTILE_DATES).map(encodeURIComponent),
    ...(field === 'continuationToken' ? [forgedCursor, forgedCursor] : []),
  );

/** start/end pairs whose span passes the 367-day rule, so the dates themselves reach the query. */
const hostileWindow = fc.constantFrom(
  ['0000-01-01', '0000-12-31'],
  ['0000-12-31T00:00:00Z', '0001-01-02T00:00:00Z'],
  ['0000-06-01T00:00:00%2B14:00', '0000-06-02T00:00:00-12:00'],
  ['9999-12-31', '9999-12-31T23:59:59Z'],
);

function mutationsOf(r: Route, ids: Record<string, string>): fc.Arbitrary<Mutation> {
  const path = fillPath(r.path, ids);
  const sample = r.body ? JSON.stringify(SAMPLE_BODIES[routeKey(r)]) : undefined;
  const validBody = sample !== undefined ? { body: sample, headers: JSON_TYPE } : { headers: {} };
  const options: fc.Arbitrary<Mutation>[] = [];

  for (const param of paramsOf(r)) {
    options.push(hostileUrlText.map((segment) => ({ label: `:${param}`, path: fillPath(r.path, { ...ids, [param]: segment }), ...validBody })));
  }
  options.push(
    fc
      .tuple(fc.oneof(hostileUrlText, hostileKey.map(encodeURIComponentLoosely)), hostileUrlText)
      .map(([key, value]) => ({ label: 'unknown query parameter', path: `${path}?${key}=${value}`, ...validBody })),
  );
  for (const field of fieldsOf(r.query)) {
    options.push(hostileQueryValue(field).map((value) => ({ label: `query ${field}`, path: `${path}?${field}=${value}`, ...validBody })));
    options.push(fc.constant({ label: `query ${field} twice`, path: `${path}?${field}=a&${field}=b`, ...validBody }));
  }
  if (fieldsOf(r.query).includes('start')) {
    options.push(hostileWindow.map(([start, end]) => ({ label: 'query window', path: `${path}?start=${start}&end=${end}`, headers: {} })));
  }
  if (r.body) {
    for (const field of new Set([...fieldsOf(r.body), ...Object.keys(SAMPLE_BODIES[routeKey(r)] as object)])) {
      options.push(hostileJsonValue.map((value) => ({ label: `body ${field}: ${value.label}`, path, body: withField(r, field, value), headers: JSON_TYPE })));
    }
    options.push(
      fc.tuple(hostileKey, hostileJsonValue).map(([key, value]) => ({ label: `body key ${JSON.stringify(key)}`, path, body: withField(r, key, value), headers: JSON_TYPE })),
    );
    options.push(
      fc
        .constantFrom('null', '[]', '[{}]', '"text"', '0', 'true', '{"__proto__":{"polluted":"yes"}}', '{"constructor":{"prototype":{"polluted":"yes"}}}')
        .map((body) => ({ label: `body ${body}`, path, body, headers: JSON_TYPE })),
    );
  }
  // Bodies that fail before any handler runs, so they are safe on routes that take no body too.
  if (r.method !== 'get') {
    options.push(garbageBody('application/json', sample ?? '{}').map((g) => ({ label: g.label, path, body: g.body, headers: g.headers })));
  }
  return fc.oneof(...options).map(labelled);
}

const labelled = (m: Mutation) => Object.assign(m, { [fc.toStringMethod]: () => `${m.label} ${m.path.slice(0, 160)}` });

/**
 * The cases the issue names, run first whatever the seed draws: a path parameter that does not
 * decode, a body that does not inflate, NUL in every body and query field, event dates and
 * continuation tokens PostgreSQL cannot store.
 */
function namedCases(r: Route, ids: Record<string, string>): Mutation[] {
  const path = fillPath(r.path, ids);
  const sample = r.body ? JSON.stringify(SAMPLE_BODIES[routeKey(r)]) : undefined;
  const validBody = sample !== undefined ? { body: sample, headers: JSON_TYPE } : { headers: {} };
  const cases: Mutation[] = paramsOf(r).map((param) => ({ label: `:${param} %E0%A4%A`, path: fillPath(r.path, { ...ids, [param]: '%E0%A4%A' }), ...validBody }));
  if (r.method !== 'get') cases.push({ label: 'gzip garbage', path, body: Buffer.from('not gzip at all'), headers: { ...JSON_TYPE, 'content-encoding': 'gzip' } });
  for (const field of fieldsOf(r.body)) {
    cases.push({ label: `body ${field}: NUL`, path, body: withField(r, field, { raw: JSON.stringify('a\u0000b'), label: 'NUL' }), headers: JSON_TYPE });
  }
  for (const field of fieldsOf(r.query)) cases.push({ label: `query ${field}: NUL`, path: `${path}?${field}=a%00b`, headers: {} });
  const forgedDates = ['+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00.000Z', '0000-01-01T00:00:00.000Z'];
  if (r.path.endsWith('/events')) {
    cases.push({ label: 'year 0', path: `${path}?start=0000-01-01&end=0000-12-31`, headers: {} });
    for (const date of forgedDates) {
      cases.push({ label: `continuationToken at ${date}`, path: `${path}?continuationToken=${base64url([date, 1])}`, headers: {} });
    }
  }
  if (r.method === 'get' && r.path.endsWith('/members')) {
    for (const date of forgedDates) {
      const token = base64url([date, '00000000-0000-4000-8000-000000000000']);
      cases.push({ label: `continuationToken at ${date}`, path: `${path}?continuationToken=${token}`, headers: {} });
    }
  }
  return cases;
}

/** Keys as a sloppy client writes them: encoded where encodeURIComponent can, raw (and malformed) where it cannot. */
function encodeURIComponentLoosely(key: string): string {
  try {
    return encodeURIComponent(key);
  } catch {
    return '%ED%A0%80';
  }
}

describeEachDriver('hostile input on every /api/v1 route', (driver) => {
  let t: TestApp;
  let adminToken: string;
  let ids: Record<string, string>;

  beforeAll(async () => {
    t = await startTestApp(driver);
    ({ ids, adminToken } = await seedRouteIds(t, { seats: 1_000 }));
  });
  afterAll(() => t.close());
  /** The digest of the database as the last refused request left it (a refusal changes nothing). */
  let known: Record<string, string> | undefined;

  it.each(apiRoutes.map((r) => [routeKey(r), r] as const))(
    '%s answers hostile input below 500, refusing it with problem+json and changing nothing',
    async (_name, r) => {
      const token = r.auth === 'bearer' ? (OPERATOR_ROUTES.has(routeKey(r)) ? SYSTEM_TOKEN : adminToken) : undefined;
      const targets = paramsOf(r).length + fieldsOf(r.body).length + fieldsOf(r.query).length;
      await fc.assert(
        fc.asyncProperty(mutationsOf(r, ids), async (m) => {
          const before = (known ??= await digestDatabase(t));
          known = undefined;
          const res = await rawRequest(t, r.method.toUpperCase(), m.path, { token, body: m.body, headers: m.headers });
          const what = `${m.label} → ${res.status} ${res.text.slice(0, 300)}`;
          expect(res.status, what).toBeLessThan(500);
          expectPrototypeClean();
          if (res.status < 400) return;
          expect(res.contentType, what).toMatch(/^application\/problem\+json/);
          expect(res.body, what).toMatchObject({
            type: `urn:portico:problem:${String(res.body?.code)}`,
            title: expect.any(String),
            status: res.status,
            detail: expect.any(String),
            code: expect.any(String),
          });
          expectNoInternalText(res.text);
          const after = await digestDatabase(t);
          expect(after, what).toEqual(before);
          known = after;
        }),
        { seed: FUZZ_SEED, numRuns: Math.min(30, 12 + 3 * targets), examples: namedCases(r, ids).map((m) => [labelled(m)] as [Mutation]) },
      );
    },
  );
});
