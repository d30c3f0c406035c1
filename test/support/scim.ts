/**
 * SCIM test support: a provider and SCIM-enabled client organizations seeded through the public
 * REST API, a small SCIM client bound to one organization's base path and key, strict response
 * checks (content type, ListResponse integers, error schema, 201 headers), captured IdP fixtures
 * and read-backs of the database for "nothing changed" assertions.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { and, count, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect } from 'vitest';
import { schema } from '../../src/db/index.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from './app.js';
import type { Driver } from './db.js';

export type ScimResponse = Awaited<ReturnType<TestApp['request']>>;

export const PUBLIC_URL = 'http://portico.test';
export const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const CORE_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

let sequence = 0;

/** A fresh, unique, lower-case email (tests share one database per file). */
export function uniqueEmail(label = 'user'): string {
  sequence += 1;
  return `${label}-${sequence}-${randomBytes(3).toString('hex')}@example.test`;
}

/** A random GUID, as Entra sends in its connection test. */
export const guid = (): string => crypto.randomUUID();

function must(res: ScimResponse, status: number, what: string): any {
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export interface ScimProvider {
  pid: string;
  adminToken: string;
}

/** An active provider whose first admin completed setup (through the REST API and the outbox). */
export async function seedProvider(t: TestApp): Promise<ScimProvider> {
  const adminEmail = uniqueEmail('provider-admin');
  const created = must(
    await t.request('POST', '/api/v1/providers', {
      token: SYSTEM_TOKEN,
      body: { name: `Provider ${randomBytes(3).toString('hex')}`, adminEmail },
    }),
    201,
    'create provider',
  );
  const setup = must(
    await t.request('POST', '/api/v1/providers/setup', { body: { token: await t.mailedToken(adminEmail) } }),
    200,
    'complete provider setup',
  );
  return { pid: created.id as string, adminToken: setup.apiToken as string };
}

/** A SCIM client bound to one organization: paths are relative to its SCIM base. */
export interface ScimOrg {
  oid: string;
  /** The base URL the REST API returned, under PUBLIC_URL. */
  baseUrl: string;
  /** The organization's SCIM base path on the test server. */
  path: string;
  token: string;
  adminToken: string;
  request(
    method: string,
    path: string,
    options?: { body?: unknown; raw?: string; headers?: Record<string, string>; token?: string | null },
  ): Promise<ScimResponse>;
  get(path: string): Promise<ScimResponse>;
  post(path: string, body: unknown): Promise<ScimResponse>;
  put(path: string, body: unknown): Promise<ScimResponse>;
  patch(path: string, body: unknown): Promise<ScimResponse>;
  delete(path: string): Promise<ScimResponse>;
}

/** Binds a SCIM client to `oid` with `token`; bodies go as application/scim+json, as IdPs send them. */
export function scimClient(t: TestApp, org: { oid: string; baseUrl: string; token: string; adminToken: string }): ScimOrg {
  const path = `/scim/v2/${org.oid}`;
  const request: ScimOrg['request'] = (method, p, options = {}) => {
    const token = options.token === undefined ? org.token : options.token;
    return t.request(method, `${path}${p}`, {
      ...(token === null ? {} : { token }),
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.raw !== undefined ? { raw: options.raw } : {}),
      headers: {
        ...(options.body !== undefined || options.raw !== undefined ? { 'content-type': 'application/scim+json' } : {}),
        ...options.headers,
      },
    });
  };
  return {
    ...org,
    path,
    request,
    get: (p) => request('GET', p),
    post: (p, body) => request('POST', p, { body }),
    put: (p, body) => request('PUT', p, { body }),
    patch: (p, body) => request('PATCH', p, { body }),
    delete: (p) => request('DELETE', p),
  };
}

/** A managed client organization of `provider` with SCIM enabled (Teams, 50 seats unless told). */
export async function scimOrganization(
  t: TestApp,
  provider: ScimProvider,
  options: { plan?: 'teams' | 'enterprise'; seats?: number } = {},
): Promise<ScimOrg> {
  const client = must(
    await t.request('POST', `/api/v1/providers/${provider.pid}/clients`, {
      token: provider.adminToken,
      body: { name: `Client ${randomBytes(3).toString('hex')}`, plan: options.plan ?? 'teams', seats: options.seats ?? 50 },
    }),
    201,
    'create client',
  );
  const oid = client.id as string;
  const enabled = must(
    await t.request('POST', `/api/v1/organizations/${oid}/scim`, { token: provider.adminToken }),
    200,
    'enable SCIM',
  );
  expect(enabled.baseUrl).toBe(`${PUBLIC_URL}/scim/v2/${oid}`);
  expect(enabled.token).toEqual(expect.any(String));
  return scimClient(t, { oid, baseUrl: enabled.baseUrl, token: enabled.token, adminToken: provider.adminToken });
}

/**
 * One real app per test file and driver, with one provider; each test makes its own organizations
 * (tenants isolate tests from each other, so nothing is truncated between them).
 */
export function useScimApp(driver: Driver) {
  let app: TestApp | undefined;
  let provider: ScimProvider | undefined;
  beforeAll(async () => {
    app = await startTestApp(driver);
    provider = await seedProvider(app);
  });
  afterAll(async () => {
    await app?.close();
  });
  return {
    get t(): TestApp {
      if (!app) throw new Error('the test app is not started');
      return app;
    },
    get provider(): ScimProvider {
      if (!provider) throw new Error('the provider is not seeded');
      return provider;
    },
    organization(options: { plan?: 'teams' | 'enterprise'; seats?: number } = {}) {
      return scimOrganization(this.t, this.provider, options);
    },
  };
}

/** PatchOp body from operations. */
export const patchOp = (...Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });

// ---- strict response checks -------------------------------------------------------------------

export function expectScimJson(res: ScimResponse): void {
  expect(res.headers.get('content-type')).toMatch(/^application\/scim\+json(;|$)/);
}

/** Asserts a SCIM response of `status` in application/scim+json, answering its body. */
export function expectScim(res: ScimResponse, status: number): any {
  expect({ status: res.status, body: res.body }).toMatchObject({ status });
  expectScimJson(res);
  return res.body;
}

/** RFC 7644 §3.12: the Error schema, `status` as a string, a detail, and the scimType when given. */
export function expectScimError(res: ScimResponse, status: number, scimType?: string): void {
  expect({ status: res.status, body: res.body }).toMatchObject({ status });
  expectScimJson(res);
  expect(res.body.schemas).toEqual([ERROR_SCHEMA]);
  expect(res.body.status).toBe(String(status));
  expect(res.body.detail).toEqual(expect.any(String));
  expect(res.body.detail.length).toBeGreaterThan(0);
  if (scimType) expect(res.body.scimType).toBe(scimType);
  else expect(res.body.scimType).toBeUndefined();
  if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
}

/** A 200 ListResponse with integer paging fields; answers its Resources. */
export function expectListResponse(
  res: ScimResponse,
  expected: { totalResults: number; startIndex?: number; itemsPerPage?: number },
): any[] {
  const body = expectScim(res, 200);
  expect(body.schemas).toEqual([LIST_RESPONSE]);
  for (const field of ['totalResults', 'startIndex', 'itemsPerPage'] as const) {
    expect(Number.isInteger(body[field]), `${field} is an integer`).toBe(true);
  }
  expect(body.totalResults).toBe(expected.totalResults);
  expect(body.startIndex).toBe(expected.startIndex ?? 1);
  const resources = (body.Resources ?? []) as any[];
  expect(body.itemsPerPage).toBe(expected.itemsPerPage ?? resources.length);
  expect(resources).toHaveLength(body.itemsPerPage);
  return resources;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/**
 * A 201 from POST: the Location header equals meta.location, which lies under the org's base URL,
 * and meta carries resourceType, created and lastModified. Answers the body.
 */
export function expectCreated(res: ScimResponse, org: Pick<ScimOrg, 'baseUrl'>, resourceType: 'User' | 'Group'): any {
  const body = expectScim(res, 201);
  const endpoint = resourceType === 'User' ? 'Users' : 'Groups';
  expect(body.id).toEqual(expect.any(String));
  expect(body.meta).toEqual({
    resourceType,
    created: expect.stringMatching(ISO_DATE),
    lastModified: expect.stringMatching(ISO_DATE),
    location: `${org.baseUrl}/${endpoint}/${body.id}`,
  });
  expect(res.headers.get('location')).toBe(body.meta.location);
  return body;
}

// ---- fixtures ---------------------------------------------------------------------------------

/**
 * A captured IdP payload from test/fixtures/<idp>/<name>.json with `_source` stripped and every
 * `{{key}}` in a string replaced from `values` (a string that is exactly `{{key}}` takes the
 * value itself, so ids and booleans keep their types).
 */
export function fixture(idp: string, name: string, values: Record<string, unknown> = {}): any {
  const text = readFileSync(new URL(`../fixtures/${idp}/${name}.json`, import.meta.url), 'utf8');
  const { _source, ...payload } = JSON.parse(text) as Record<string, unknown>;
  if (typeof _source !== 'string' || !_source.includes('idp-behaviour.md')) {
    throw new Error(`fixture ${idp}/${name} must cite its source in _source`);
  }
  if (Object.keys(JSON.parse(text))[0] !== '_source') throw new Error(`fixture ${idp}/${name}: _source must come first`);
  const fill = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const whole = /^\{\{(\w+)\}\}$/.exec(value);
      if (whole) return lookup(whole[1]!);
      return value.replace(/\{\{(\w+)\}\}/g, (_m, key: string) => String(lookup(key)));
    }
    if (Array.isArray(value)) return value.map(fill);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v)]));
    return value;
  };
  const lookup = (key: string) => {
    if (!(key in values)) throw new Error(`fixture ${idp}/${name} needs {{${key}}}`);
    return values[key];
  };
  return fill(payload);
}

// ---- database and REST read-backs -------------------------------------------------------------

export async function memberRows(t: TestApp, oid: string) {
  const m = schema.members;
  return t.testDb.database.db.select().from(m).where(eq(m.organizationId, oid));
}

export async function memberRow(t: TestApp, oid: string, id: string) {
  const m = schema.members;
  const [row] = await t.testDb.database.db
    .select()
    .from(m)
    .where(and(eq(m.organizationId, oid), eq(m.id, id)));
  return row;
}

export async function memberCount(t: TestApp, oid: string): Promise<number> {
  const [row] = await t.testDb.database.db.select({ n: count() }).from(schema.members).where(eq(schema.members.organizationId, oid));
  return row?.n ?? 0;
}

export async function groupCount(t: TestApp, oid: string): Promise<number> {
  const [row] = await t.testDb.database.db.select({ n: count() }).from(schema.groups).where(eq(schema.groups.organizationId, oid));
  return row?.n ?? 0;
}

export async function eventCount(t: TestApp, oid: string): Promise<number> {
  const [row] = await t.testDb.database.db.select({ n: count() }).from(schema.events).where(eq(schema.events.organizationId, oid));
  return row?.n ?? 0;
}

/** The member ids of a group, straight from group_members. */
export async function groupMemberIds(t: TestApp, groupId: string): Promise<string[]> {
  const gm = schema.groupMembers;
  const rows = await t.testDb.database.db.select({ id: gm.memberId }).from(gm).where(eq(gm.groupId, groupId));
  return rows.map((r) => r.id).sort();
}

/** What a change could touch in an organization, to assert that a refused request changed nothing. */
export async function snapshot(t: TestApp, oid: string) {
  const db = t.testDb.database.db;
  const members = await db.select().from(schema.members).where(eq(schema.members.organizationId, oid));
  const groups = await db.select().from(schema.groups).where(eq(schema.groups.organizationId, oid));
  const links = await db.select().from(schema.groupMembers).where(eq(schema.groupMembers.organizationId, oid));
  const sort = <T,>(rows: T[]) => [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  return { members: sort(members), groups: sort(groups), links: sort(links), events: await eventCount(t, oid) };
}

/** The member as the REST API shows it to the provider admin. */
export function restMember(t: TestApp, org: Pick<ScimOrg, 'oid' | 'adminToken'>, id: string) {
  return t.request('GET', `/api/v1/organizations/${org.oid}/members/${id}`, { token: org.adminToken });
}

/** The organization's events as the REST API shows them to the provider admin (newest first). */
export async function restEvents(t: TestApp, org: Pick<ScimOrg, 'oid' | 'adminToken'>): Promise<any[]> {
  return must(await t.request('GET', `/api/v1/organizations/${org.oid}/events`, { token: org.adminToken }), 200, 'read events').data;
}

/** The invitee accepts the mailed invitation (the member becomes accepted). */
export async function acceptInvitation(t: TestApp, email: string): Promise<void> {
  must(await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email) } }), 200, 'accept invitation');
}
