/**
 * Rules every route of the /api/v1 route table keeps, checked route by route from the table itself,
 * so a route added later is covered without touching this file (except for a sample body).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apiRoutes } from '../../src/http/api.routes.js';
import type { Route } from '../../src/http/route.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  expectProblem,
  fillPath,
  routeKey,
  SAMPLE_BODIES,
  seedRouteIds,
  tableCounts,
  unknownId,
} from '../support/http-seed.js';

/** Path parameters that name a row (as opposed to `:type`, a policy type word). */
const ID_PARAMS = ['pid', 'uid', 'oid', 'mid', 'gid', 'cid', 'tid', 'did'] as const;
type IdParam = (typeof ID_PARAMS)[number];

const paramsOf = (r: Route) => [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);

const bearerRoutes = apiRoutes.filter((r) => r.auth === 'bearer');
const routesWithIds = apiRoutes.flatMap((r) =>
  paramsOf(r)
    .filter((p): p is IdParam => (ID_PARAMS as readonly string[]).includes(p))
    .map((param) => ({ route: r, param })),
);

it('every route with a body schema has a sample body in SAMPLE_BODIES, so the checks below reach it', () => {
  expect(apiRoutes.filter((r) => r.body).map(routeKey).sort()).toEqual(Object.keys(SAMPLE_BODIES).sort());
});

describeEachDriver('every /api/v1 route', (driver) => {
  let t: TestApp;
  /** Real ids of one provider's rows; each test replaces one of them by an unknown or malformed id. */
  let real: Record<string, string>;
  let adminToken: string;

  beforeAll(async () => {
    t = await startTestApp(driver);
    ({ ids: real, adminToken } = await seedRouteIds(t));
  });
  afterAll(() => t.close());

  const send = (r: Route, path: string, token?: string) =>
    t.request(r.method.toUpperCase(), path, {
      ...(token !== undefined ? { token } : {}),
      ...(r.body ? { body: SAMPLE_BODIES[routeKey(r)] } : {}),
    });

  it.each(bearerRoutes.map((r) => [routeKey(r), r] as const))(
    '%s without a token answers 401 problem+json with WWW-Authenticate: Bearer and changes nothing',
    async (_name, r) => {
      const before = await tableCounts(t);
      expectProblem(await send(r, fillPath(r.path, real)), 401, 'auth.unauthenticated');
      expect(await tableCounts(t)).toEqual(before);
    },
  );

  it.each(apiRoutes.filter((r) => r.auth !== 'none').map((r) => [routeKey(r), r] as const))(
    '%s with an unknown or ill-formed bearer token answers 401 and changes nothing',
    async (_name, r) => {
      const before = await tableCounts(t);
      const path = fillPath(r.path, real);
      expectProblem(await send(r, path, 'pt_not-a-real-token'), 401, 'auth.unauthenticated');
      const basic = await t.request(r.method.toUpperCase(), path, {
        headers: { authorization: 'Basic dXNlcjpwYXNz' },
        ...(r.body ? { body: SAMPLE_BODIES[routeKey(r)] } : {}),
      });
      expectProblem(basic, 401, 'auth.unauthenticated');
      expect(await tableCounts(t)).toEqual(before);
    },
  );

  it.each(routesWithIds.map(({ route: r, param }) => [routeKey(r), param, r] as const))(
    '%s with an unknown :%s answers 404 problem+json and changes nothing',
    async (_name, param, r) => {
      const token = r.path.startsWith('/me') ? adminToken : /\/(enable|disable)$/.test(r.path) ? SYSTEM_TOKEN : adminToken;
      const before = await tableCounts(t);
      for (const bad of [unknownId(), 'not-an-id', '1%20or%201=1']) {
        const res = await send(r, fillPath(r.path, { ...real, [param]: bad }), token);
        expectProblem(res, 404);
        expect(res.body.code).toMatch(/\.not_found$/);
      }
      // The admin's hourly access event to the organization was recorded while seeding.
      expect(await tableCounts(t)).toEqual(before);
    },
  );

  it('the operator token reaches any provider or organization but not a personal route (403)', async () => {
    expectProblem(await t.request('GET', '/api/v1/me', { token: SYSTEM_TOKEN }), 403, 'auth.permission_denied');
    expectProblem(await t.request('GET', '/api/v1/me/tokens', { token: SYSTEM_TOKEN }), 403, 'auth.permission_denied');
    expect((await t.request('GET', `/api/v1/providers/${real.pid}`, { token: SYSTEM_TOKEN })).status).toBe(200);
    expect((await t.request('GET', `/api/v1/organizations/${real.oid}`, { token: SYSTEM_TOKEN })).status).toBe(200);
  });
});
