/**
 * The OpenAPI document is typed from the route table: an operationId on every operation, request
 * schemas from the zod schemas that validate, answers from the response schemas (and those match
 * what the API really answers), and the 4xx answers each route can give as problem+json.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { apiRoutes } from '../../src/http/api.routes.js';
import { buildOpenApi, CONFLICTING_OPERATIONS } from '../../src/http/openapi.js';
import * as s from '../../src/http/schemas.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { fillPath, invitedMember, must, routeKey, seedRouteIds, uniqueEmail } from '../support/http-seed.js';

type Operation = {
  operationId: string;
  requestBody?: { required: boolean; content: Record<string, { schema: { $ref: string } }> };
  responses: Record<string, { $ref?: string; content?: Record<string, { schema: { $ref?: string } }> }>;
};
const doc = buildOpenApi(apiRoutes, { serverUrl: 'http://portico.test', version: '0.1.0' });
const operationOf = (r: (typeof apiRoutes)[number]) =>
  (doc.paths[r.path.replace(/:(\w+)/g, '{$1}')] as Record<string, Operation>)[r.method]!;
const schemaAt = (ref: string) => doc.components.schemas[ref.replace('#/components/schemas/', '')] as Record<string, unknown>;

describe('the OpenAPI document', () => {
  it('every operation has an operationId, unique, a camelCase verb phrase taken from the route table', () => {
    const ids = apiRoutes.map((r) => r.operationId);
    for (const [i, r] of apiRoutes.entries()) {
      expect(r.operationId, routeKey(r)).toMatch(/^[a-z][a-zA-Z]+$/);
      expect(operationOf(r).operationId).toBe(ids[i]);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(['listMembers', 'inviteMembers', 'revokeMember', 'enableProvider', 'rotateScimKey']));
  });

  it('request bodies are the JSON Schema of the zod schemas that validate them', () => {
    for (const r of apiRoutes.filter((x) => x.body)) {
      const body = operationOf(r).requestBody!;
      expect(body.required, routeKey(r)).toBe(!r.body!.safeParse(undefined).success);
      const { $schema: _ignored, ...expected } = z.toJSONSchema(r.body!, { io: 'input', unrepresentable: 'any' });
      expect(schemaAt(body.content['application/json']!.schema.$ref), routeKey(r)).toEqual(expected);
    }
    expect(operationOf(apiRoutes.find((r) => r.operationId === 'startDirectorySync')!).requestBody!.required).toBe(false);
  });

  it('every answer with a body has a schema, every $ref resolves, and the shared objects are named components', () => {
    const text = JSON.stringify(doc);
    for (const [, ref] of text.matchAll(/"\$ref":"([^"]+)"/g)) {
      const [, kind, name] = /^#\/components\/(schemas|responses)\/(\w+)$/.exec(ref!) ?? [];
      expect(kind && (doc.components[kind as 'schemas' | 'responses'] as Record<string, unknown>)[name!], ref).toBeDefined();
    }
    for (const r of apiRoutes) {
      const success = operationOf(r).responses[String(r.status ?? 200)]!;
      if (r.status === 204) expect(success.content).toBeUndefined();
      else expect(success.content?.['application/json']?.schema.$ref, routeKey(r)).toMatch(/^#\/components\/schemas\//);
    }
    for (const name of ['Problem', 'Organization', 'Member', 'MemberPage', 'Group', 'Collection', 'Provider', 'ProviderUser', 'EventPage', 'SsoConfig', 'DirectoryConfig', 'DirectoryRun']) {
      expect(doc.components.schemas, name).toHaveProperty(name);
    }
    expect(operationOf(apiRoutes.find((r) => r.operationId === 'getMember')!).responses['200']!.content!['application/json']!.schema).toEqual({
      $ref: '#/components/schemas/Member',
    });
  });

  it('each operation lists the 4xx it can answer, each a problem+json Problem', () => {
    for (const r of apiRoutes) {
      const codes = Object.keys(operationOf(r).responses);
      const expected = [
        String(r.status ?? 200),
        '400',
        ...(r.auth !== 'none' ? ['401'] : []),
        ...(r.auth === 'bearer' ? ['403'] : []),
        ...(/:\w+/.test(r.path) ? ['404'] : []),
        ...(CONFLICTING_OPERATIONS.has(r.operationId) ? ['409'] : []),
        'default',
      ];
      expect(codes, routeKey(r)).toEqual(expected);
    }
    for (const response of Object.values(doc.components.responses)) {
      expect(response.content).toEqual({ 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } });
    }
    expect(doc.components.responses.Unauthorized.headers).toHaveProperty('WWW-Authenticate');
    expect(schemaAt('#/components/schemas/Problem')).toMatchObject({ required: ['type', 'title', 'status', 'detail', 'code'] });
    const known = new Set(apiRoutes.map((r) => r.operationId));
    for (const id of CONFLICTING_OPERATIONS) expect(known.has(id), `${id} is an operation`).toBe(true);
  });
});

describeEachDriver('the response schemas', (driver) => {
  let t: TestApp;
  let ids: Record<string, string>;
  let adminToken: string;
  beforeAll(async () => {
    t = await startTestApp(driver);
    ({ ids, adminToken } = await seedRouteIds(t));
  });
  afterAll(() => t.close());

  /** The body parses, and parsing drops nothing: no field the schema does not describe. */
  function expectMatches(schema: z.ZodType, body: unknown, what: string) {
    const parsed = schema.safeParse(body);
    expect(parsed.success ? [] : parsed.error.issues, what).toEqual([]);
    expect(parsed.data, `${what}: a field the schema does not describe`).toEqual(body);
  }

  it('describe what every GET of a seeded provider and organization answers', async () => {
    let checked = 0;
    for (const r of apiRoutes.filter((x) => x.method === 'get' && x.response)) {
      const token = ['/outbox', '/providers'].includes(r.path) ? SYSTEM_TOKEN : adminToken;
      const res = await t.request('GET', fillPath(r.path, ids), { token });
      // Unconfigured directory and SSO answer 404; a run id is not seeded.
      if (res.status === 404) continue;
      expect(res.status, routeKey(r)).toBe(200);
      expectMatches(r.response!, res.body, routeKey(r));
      checked += 1;
    }
    expect(checked).toBeGreaterThanOrEqual(20);
  });

  it('describe what the main writes answer', async () => {
    const base = `/api/v1/organizations/${ids.oid}`;
    const invited = must(
      await t.request('POST', `${base}/members`, { token: adminToken, body: { emails: [uniqueEmail('schema')], role: 'user' } }),
      201,
      'invite',
    );
    expectMatches(s.inviteMembersResponse, invited, 'POST members');
    const member = await invitedMember(t, ids.oid!, adminToken);
    expectMatches(s.memberResponse, must(await t.request('POST', `${base}/members/${member.memberId}/revoke`, { token: adminToken }), 200, 'revoke'), 'revoke');
    expectMatches(s.groupResponse, must(await t.request('PATCH', `${base}/groups/${ids.gid}`, { token: adminToken, body: { name: 'G2' } }), 200, 'group'), 'PATCH group');
    expectMatches(s.scimKeyResponse, must(await t.request('POST', `${base}/scim`, { token: adminToken }), 200, 'scim'), 'POST scim');
    expectMatches(s.newApiTokenResponse, must(await t.request('POST', '/api/v1/me/tokens', { token: adminToken, body: { name: 'x' } }), 201, 'token'), 'POST token');
    const run = await t.request('POST', `${base}/directory/sync`, { token: adminToken });
    if (run.status === 202) expectMatches(s.directoryRunResponse, run.body, 'POST directory/sync');
  });
});
