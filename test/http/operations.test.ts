/**
 * Operations: health, readiness, metrics, the OpenAPI document, request ids and unknown routes.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apiRoutes } from '../../src/http/api.routes.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { expectProblem, setupProvider } from '../support/http-seed.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describeEachDriver('operations', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(() => t.close());

  it('/healthz answers 200 while the process is up', async () => {
    const res = await t.request('GET', '/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('/readyz answers 200 while the database is reachable', async () => {
    const res = await t.request('GET', '/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready' });
  });

  it('/metrics exposes portico_http_requests_total labelled by method, route pattern and status', async () => {
    const p = await setupProvider(t);
    await t.request('GET', `/api/v1/providers/${p.pid}`, { token: p.adminToken });
    await t.request('GET', '/api/v1/no/such/route');
    const res = await fetch(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain('# TYPE portico_http_requests_total counter');
    expect(text).toMatch(/portico_http_requests_total\{method="GET",route="\/api\/v1\/providers\/:pid",status="200"\} [1-9]/);
    expect(text).toMatch(/portico_http_requests_total\{method="GET",route="unmatched",status="404"\} [1-9]/);
    expect(text).toContain('portico_http_request_duration_seconds_bucket');
    // Ids never become label values (unbounded cardinality).
    expect(text).not.toContain(p.pid);
  });

  it('/api/v1/openapi.json is an OpenAPI 3.1 document listing every route of the route table', async () => {
    const res = await t.request('GET', '/api/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(doc.servers).toEqual([{ url: 'http://portico.test/api/v1' }]);
    expect(doc.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });

    const listed = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const expected = apiRoutes.map((r) => `${r.method.toUpperCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
    expect(listed.sort()).toEqual([...expected].sort());

    for (const r of apiRoutes) {
      const op = doc.paths[r.path.replace(/:(\w+)/g, '{$1}')][r.method];
      const params = [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]);
      expect(op.parameters?.filter((x: { in: string }) => x.in === 'path').map((x: { name: string }) => x.name) ?? []).toEqual(params);
      expect(op.operationId).toBe(r.operationId);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining([String(r.status ?? 200), '400', 'default']));
      expect(op.responses.default).toEqual({ $ref: '#/components/responses/Problem' });
      if (r.body) expect(op.requestBody.content['application/json'].schema.$ref).toMatch(/^#\/components\/schemas\/\w+Request$/);
      else expect(op.requestBody).toBeUndefined();
      if (r.auth === 'none') expect(op.security).toEqual([]);
    }
    expect(doc.components.schemas.Problem.required).toEqual(['type', 'title', 'status', 'detail', 'code']);
    const invite = doc.components.schemas.InviteMembersRequest;
    expect(invite).toMatchObject({ type: 'object', required: ['emails', 'role'], additionalProperties: false });
    const events = doc.paths['/providers/{pid}/events'].get.parameters.map((x: { name: string; in: string }) => `${x.in}:${x.name}`);
    expect(events).toEqual(['path:pid', 'query:start', 'query:end', 'query:continuationToken']);
  });

  it('X-Request-Id is echoed when well-formed and generated otherwise, on successes and problems alike', async () => {
    const echoed = await t.request('GET', '/healthz', { headers: { 'x-request-id': 'trace-abc.123:xyz' } });
    expect(echoed.headers.get('x-request-id')).toBe('trace-abc.123:xyz');
    const problem = await t.request('GET', '/api/v1/me', { headers: { 'x-request-id': 'req-401' } });
    expect(problem.status).toBe(401);
    expect(problem.headers.get('x-request-id')).toBe('req-401');

    const generated = await t.request('GET', '/healthz');
    expect(generated.headers.get('x-request-id')).toMatch(UUID);
    const other = await t.request('GET', '/healthz');
    expect(other.headers.get('x-request-id')).not.toBe(generated.headers.get('x-request-id'));
    for (const bad of ['has spaces in it', 'x'.repeat(129), 'semi;colon']) {
      const res = await t.request('GET', '/healthz', { headers: { 'x-request-id': bad } });
      expect(res.headers.get('x-request-id')).toMatch(UUID);
    }
  });

  it('unknown routes answer problem+json 404 route.not_found, inside and outside /api/v1', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/nothing-here'],
      ['POST', '/api/v1/providers/00000000-0000-4000-8000-000000000000/nothing'],
      ['PUT', '/api/v1/providers/00000000-0000-4000-8000-000000000000/users/x/nothing'],
      ['GET', '/api/v1/organizations'],
      ['GET', '/nothing-here'],
      ['DELETE', '/healthz'],
    ] as const) {
      const res = await t.request(method, path, { token: SYSTEM_TOKEN });
      expectProblem(res, 404, 'route.not_found');
    }
  });

  it('a known /api/v1 path asked with a method it does not take answers 405 method.not_allowed with Allow, before any token check', async () => {
    const pid = '00000000-0000-4000-8000-000000000000';
    for (const [method, path, allow] of [
      ['PUT', '/api/v1/providers', 'GET, HEAD, POST'],
      ['DELETE', '/api/v1/me', 'GET, HEAD'],
      ['POST', `/api/v1/providers/${pid}/`, 'GET, HEAD, PATCH'],
      ['GET', '/api/v1/invitations/accept', 'POST'],
      ['PATCH', `/api/v1/organizations/${pid}/scim`, 'DELETE, GET, HEAD, POST'],
      // `setup` is also a `:pid` to express, so GET and PATCH reach that route.
      ['PUT', '/api/v1/providers/setup', 'GET, HEAD, PATCH, POST'],
      ['POST', '/api/v1/openapi.json', 'GET, HEAD'],
      ['OPTIONS', '/api/v1/me/tokens', 'GET, HEAD, POST'],
    ] as const) {
      const res = await t.request(method, path);
      expectProblem(res, 405, 'method.not_allowed');
      expect(res.headers.get('allow'), `${method} ${path}`).toBe(allow);
    }
    // Every route's own method still reaches it.
    for (const r of apiRoutes) {
      const res = await t.request(r.method.toUpperCase(), `/api/v1${r.path.replace(/:(\w+)/g, pid)}`);
      expect(res.status, `${r.method} ${r.path}`).not.toBe(405);
    }
  });

  it('error responses never carry internal detail: a problem is exactly type, title, status, detail, code (and errors)', async () => {
    const p = await setupProvider(t);
    const res = await t.request('GET', `/api/v1/providers/${p.pid}/users/00000000-0000-4000-8000-000000000000/nothing`, { token: p.adminToken });
    expectProblem(res, 404);
    expect(Object.keys(res.body).sort()).toEqual(['code', 'detail', 'status', 'title', 'type']);
    const invalid = await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 1 } });
    expect(Object.keys(invalid.body).sort()).toEqual(['code', 'detail', 'errors', 'status', 'title', 'type']);
    expect(JSON.stringify(invalid.body)).not.toMatch(/at .*\.ts|stack|zod/i);
  });
});
