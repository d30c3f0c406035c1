/**
 * Seeds for HTTP tests, made through the public API of a running test app (no SQL shortcuts),
 * plus read-backs of the database for "nothing changed" assertions and a problem+json check.
 */
import { randomBytes } from 'node:crypto';
import { and, count, eq, type SQL } from 'drizzle-orm';
import { expect } from 'vitest';
import { schema } from '../../src/db/index.js';
import { SYSTEM_TOKEN, type TestApp } from './app.js';

type Response = Awaited<ReturnType<TestApp['request']>>;

let sequence = 0;

/** A fresh, unique, lower-case email: tests never collide, even on a shared database. */
export function uniqueEmail(label = 'person'): string {
  sequence += 1;
  return `${label}-${sequence}-${randomBytes(3).toString('hex')}@example.test`;
}

/** Answers the body of `res`, or throws naming the request's outcome (seeding must not fail silently). */
export function must(res: Response, status: number, what: string): any {
  if (res.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

/** Asserts an RFC 9457 problem with the given status (and code), carrying every required member. */
export function expectProblem(res: Response, status: number, code?: string): void {
  expect({ status: res.status, body: res.body }).toMatchObject({ status, ...(code ? { body: { code } } : {}) });
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({
    type: expect.stringMatching(/^urn:portico:problem:/),
    title: expect.any(String),
    status,
    detail: expect.any(String),
    code: expect.any(String),
  });
  expect(res.body.type).toBe(`urn:portico:problem:${res.body.code}`);
  if (status === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer');
}

export interface SeededProvider {
  pid: string;
  name: string;
  adminEmail: string;
  adminToken: string;
  adminUserId: string;
  adminProviderUserId: string;
}

/** An active provider whose first admin completed setup; its billing email is `billing-<…>`. */
export async function setupProvider(t: TestApp, options: { name?: string } = {}): Promise<SeededProvider> {
  const name = options.name ?? `Provider ${randomBytes(3).toString('hex')}`;
  const adminEmail = uniqueEmail('provider-admin');
  const created = must(
    await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name, adminEmail } }),
    201,
    'create provider',
  );
  const setup = must(
    await t.request('POST', '/api/v1/providers/setup', {
      body: { token: await t.mailedToken(adminEmail), billingEmail: uniqueEmail('billing') },
    }),
    200,
    'complete provider setup',
  );
  const me = must(await t.request('GET', '/api/v1/me', { token: setup.apiToken }), 200, 'read /me');
  const staff = (me.providers as { providerId: string; providerUserId: string }[]).find((p) => p.providerId === created.id);
  if (!staff) throw new Error('the setup admin is not a provider user');
  return {
    pid: created.id,
    name,
    adminEmail,
    adminToken: setup.apiToken,
    adminUserId: setup.user.id,
    adminProviderUserId: staff.providerUserId,
  };
}

export interface SeededProviderUser {
  providerUserId: string;
  userId: string;
  email: string;
  token: string;
}

/** Invites a provider user; with `until: 'accepted'` it stops before confirmation. */
export async function providerUser(
  t: TestApp,
  provider: Pick<SeededProvider, 'pid' | 'adminToken'>,
  options: { type?: 'admin' | 'serviceUser'; until?: 'accepted' | 'confirmed' } = {},
): Promise<SeededProviderUser> {
  const email = uniqueEmail(options.type ?? 'service-user');
  const invited = must(
    await t.request('POST', `/api/v1/providers/${provider.pid}/users`, {
      token: provider.adminToken,
      body: { emails: [email], type: options.type ?? 'serviceUser' },
    }),
    201,
    'invite provider user',
  );
  const providerUserId = invited.invited[0].id as string;
  const accepted = must(
    await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email) } }),
    200,
    'accept provider-user invitation',
  );
  if ((options.until ?? 'confirmed') === 'confirmed') {
    must(
      await t.request('POST', `/api/v1/providers/${provider.pid}/users/${providerUserId}/confirm`, {
        token: provider.adminToken,
      }),
      200,
      'confirm provider user',
    );
  }
  return { providerUserId, userId: accepted.user.id, email, token: accepted.apiToken };
}

/** A confirmed service user of the provider. */
export const serviceUser = (t: TestApp, provider: Pick<SeededProvider, 'pid' | 'adminToken'>) =>
  providerUser(t, provider, { type: 'serviceUser' });

export interface ClientInput {
  name?: string;
  plan?: 'teams' | 'enterprise';
  seats?: number;
  ownerEmail?: string;
  identifier?: string;
  collectionName?: string;
}

/** A managed client organization of the provider (Enterprise, 20 seats, no owner unless asked). */
export async function createClient(
  t: TestApp,
  provider: Pick<SeededProvider, 'pid' | 'adminToken'>,
  input: ClientInput = {},
): Promise<{ id: string; identifier: string; [key: string]: unknown }> {
  return must(
    await t.request('POST', `/api/v1/providers/${provider.pid}/clients`, {
      token: provider.adminToken,
      body: { name: `Client ${randomBytes(3).toString('hex')}`, plan: 'enterprise', seats: 20, ...input },
    }),
    201,
    'create client',
  );
}

export interface SeededMember {
  memberId: string;
  email: string;
  /** Present once the invitation was accepted. */
  token: string;
  userId: string;
}

type Role = 'owner' | 'admin' | 'user' | 'custom';

/** Invites one member and answers its id and email (status invited). */
export async function invitedMember(
  t: TestApp,
  oid: string,
  token: string,
  options: { role?: Role; permissions?: Record<string, boolean>; email?: string } = {},
): Promise<{ memberId: string; email: string }> {
  const email = options.email ?? uniqueEmail(options.role ?? 'user');
  const invited = must(
    await t.request('POST', `/api/v1/organizations/${oid}/members`, {
      token,
      body: { emails: [email], role: options.role ?? 'user', ...(options.permissions ? { permissions: options.permissions } : {}) },
    }),
    201,
    'invite member',
  );
  return { memberId: invited.invited[0].id, email };
}

/** Invites and accepts one member (status accepted) with its personal token. */
export async function acceptedMember(
  t: TestApp,
  oid: string,
  token: string,
  options: { role?: Role; permissions?: Record<string, boolean> } = {},
): Promise<SeededMember> {
  const { memberId, email } = await invitedMember(t, oid, token, options);
  const accepted = must(
    await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email) } }),
    200,
    'accept member invitation',
  );
  return { memberId, email, token: accepted.apiToken, userId: accepted.user.id };
}

/** Invites, accepts and confirms one member; `token` (of an owner or provider user) does the inviting. */
export async function confirmedMember(
  t: TestApp,
  oid: string,
  token: string,
  options: { role?: Role; permissions?: Record<string, boolean> } = {},
): Promise<SeededMember> {
  const member = await acceptedMember(t, oid, token, options);
  must(
    await t.request('POST', `/api/v1/organizations/${oid}/members/${member.memberId}/confirm`, { token }),
    200,
    'confirm member',
  );
  return member;
}

/** Every member of an organization, read through the operator (who records no access event). */
export async function membersOf(t: TestApp, oid: string): Promise<any[]> {
  return must(await t.request('GET', `/api/v1/organizations/${oid}/members`, { token: SYSTEM_TOKEN }), 200, 'list members')
    .data;
}

/** How many events the database holds, optionally of one organization, provider or type. */
export async function countEvents(
  t: TestApp,
  where: { organizationId?: string; providerId?: string; type?: string } = {},
): Promise<number> {
  const e = schema.events;
  const conditions: SQL[] = [];
  if (where.organizationId) conditions.push(eq(e.organizationId, where.organizationId));
  if (where.providerId) conditions.push(eq(e.providerId, where.providerId));
  if (where.type) conditions.push(eq(e.type, where.type));
  const [row] = await t.testDb.database.db
    .select({ n: count() })
    .from(e)
    .where(conditions.length ? and(...conditions) : undefined);
  return row?.n ?? 0;
}

/** How many mails the outbox holds for `email`. */
export async function countMails(t: TestApp, email: string): Promise<number> {
  const o = schema.outbox;
  const [row] = await t.testDb.database.db.select({ n: count() }).from(o).where(eq(o.recipient, email.toLowerCase()));
  return row?.n ?? 0;
}

/** A snapshot of rows in the tables a refused request must not touch. */
export async function tableCounts(t: TestApp): Promise<Record<string, number>> {
  const db = t.testDb.database.db;
  const tables = {
    providers: schema.providers,
    providerUsers: schema.providerUsers,
    organizations: schema.organizations,
    members: schema.members,
    groups: schema.groups,
    collections: schema.collections,
    groupMembers: schema.groupMembers,
    collectionGroups: schema.collectionGroups,
    collectionMembers: schema.collectionMembers,
    policies: schema.policies,
    events: schema.events,
    outbox: schema.outbox,
    invitations: schema.invitations,
    apiTokens: schema.apiTokens,
    scimConfigs: schema.scimConfigs,
    ssoConfigs: schema.ssoConfigs,
    ssoTransactions: schema.ssoTransactions,
    ssoIdentities: schema.ssoIdentities,
    ssoReplays: schema.ssoReplays,
    sessions: schema.sessions,
    claimedDomains: schema.claimedDomains,
  };
  const out: Record<string, number> = {};
  for (const [name, table] of Object.entries(tables)) {
    const [row] = await db.select({ n: count() }).from(table);
    out[name] = row?.n ?? 0;
  }
  return out;
}

/**
 * One real row for every `:param` of the route table (a provider, an invited staff member, a
 * client organization with an invited member, a group, a collection, a spare personal token),
 * created through the API by the provider's first admin; answers the ids and that admin's token.
 */
export async function seedRouteIds(t: TestApp, options: { seats?: number } = {}) {
  const provider = await setupProvider(t);
  const adminToken = provider.adminToken;
  const staff = must(
    await t.request('POST', `/api/v1/providers/${provider.pid}/users`, {
      token: adminToken,
      body: { emails: [uniqueEmail('staff')], type: 'serviceUser' },
    }),
    201,
    'invite staff',
  );
  const org = await createClient(t, provider, options.seats ? { seats: options.seats } : {});
  const member = await invitedMember(t, org.id, adminToken);
  const base = `/api/v1/organizations/${org.id}`;
  const group = must(await t.request('POST', `${base}/groups`, { token: adminToken, body: { name: 'G' } }), 201, 'group');
  const collection = must(await t.request('POST', `${base}/collections`, { token: adminToken, body: { name: 'C' } }), 201, 'collection');
  const token = must(await t.request('POST', '/api/v1/me/tokens', { token: adminToken, body: { name: 'spare' } }), 201, 'token');
  const domain = must(
    await t.request('POST', `${base}/domains`, { token: adminToken, body: { domain: `${randomBytes(4).toString('hex')}.example.test` } }),
    201,
    'domain',
  );
  const ids: Record<string, string> = {
    pid: provider.pid,
    uid: staff.invited[0].id,
    oid: org.id,
    mid: member.memberId,
    gid: group.id,
    cid: collection.id,
    tid: token.id,
    did: domain.id,
    type: 'singleOrg',
  };
  return { ids, adminToken };
}

/** A well-formed id that names nothing. */
export const unknownId = () => '00000000-0000-4000-8000-' + randomBytes(6).toString('hex');

/**
 * A body each route with a body schema accepts (keyed `METHOD /path` as in the route table), so a
 * check that runs after validation is reached. route-table.test.ts fails when a route lacks one.
 */
export const SAMPLE_BODIES: Record<string, unknown> = {
  'POST /me/tokens': { name: 'ci' },
  'POST /invitations/accept': { token: 'inv_nothing' },
  'POST /providers': { name: 'Sample', adminEmail: 'sample@example.test' },
  'POST /providers/setup': { token: 'inv_nothing' },
  'PATCH /providers/:pid': { name: 'Renamed' },
  'POST /providers/:pid/users': { emails: ['sample-user@example.test'], type: 'serviceUser' },
  'PATCH /providers/:pid/users/:uid': { type: 'admin' },
  'POST /providers/:pid/clients': { name: 'Sample client', plan: 'teams', seats: 1 },
  'PATCH /providers/:pid/clients/:oid': { name: 'Renamed client' },
  'POST /organizations/:oid/members': { emails: ['sample-member@example.test'], role: 'user' },
  'PATCH /organizations/:oid/members/:mid': { role: 'admin' },
  'POST /organizations/:oid/groups': { name: 'Sample group' },
  'PATCH /organizations/:oid/groups/:gid': { name: 'Renamed group' },
  'POST /organizations/:oid/collections': { name: 'Sample collection' },
  'PATCH /organizations/:oid/collections/:cid': { name: 'Renamed collection' },
  'PUT /organizations/:oid/policies/:type': { enabled: false },
  'PUT /organizations/:oid/directory': {
    kind: 'ldap',
    url: 'ldap://ldap.example.test',
    bindDn: 'cn=sync,dc=example,dc=test',
    bindPassword: 'sample-bind-password',
    users: { baseDn: 'ou=people,dc=example,dc=test' },
  },
  'POST /organizations/:oid/directory/sync': { dryRun: true },
  'PUT /organizations/:oid/sso': {
    enabled: false,
    kind: 'oidc',
    jit: false,
    oidc: { authority: 'https://idp.example.test', clientId: 'portico', clientSecret: 'sample-client-secret' },
  },
  'POST /organizations/:oid/domains': { domain: 'sample.example.test' },
  'POST /sso/token': { code: 'pc_nothing' },
};

/** `METHOD /path` of a route of the route table. */
export const routeKey = (r: { method: string; path: string }) => `${r.method.toUpperCase()} ${r.path}`;

/** The request path of a route-table path with its `:params` filled in. */
export const fillPath = (path: string, values: Record<string, string>) =>
  `/api/v1${path}`.replace(/:(\w+)/g, (_m, name: string) => values[name] ?? name);
