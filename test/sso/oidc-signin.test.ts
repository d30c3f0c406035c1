/**
 * OIDC sign-in over HTTP (design.md "SSO", domain.md "SSO and claimed domains"): the real app on
 * port 0 against a real oidc-provider IdP (test/support/oidc-idp.ts). Configuration through the
 * API, the membership a verified identity leads to, the attacks a browser or a network can mount
 * on the callback, the requireSso policy, and the /sso/login page. Every refusal is checked to
 * change nothing but its refusal event.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { count, eq, ne } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { SYSTEM_TOKEN, startTestApp, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  confirmedMember,
  createClient,
  expectProblem,
  invitedMember,
  acceptedMember,
  membersOf,
  must,
  setupProvider,
  tableCounts,
  uniqueEmail,
  type SeededProvider,
} from '../support/http-seed.js';
import { startOidcIdp, type TestAccount, type TestIdp } from '../support/oidc-idp.js';
import {
  captureLogLines,
  fetchCallback,
  oidcRedirectUri,
  oidcSsoBody,
  signInAtIdp,
  ssoIdentifiers,
  startSignIn,
} from '../support/sso.js';

const RETURN_URL = 'https://app.example.test/sso/return';

/**
 * tableCounts, but `events` leaves out `organization.accessed`: provider staff reaching a client
 * is audited on every kind of request, refused ones included, and is not a change the request made.
 */
async function stateCounts(t: TestApp): Promise<Record<string, number>> {
  const counts = await tableCounts(t);
  const e = schema.events;
  const [row] = await t.testDb.database.db.select({ n: count() }).from(e).where(ne(e.type, 'organization.accessed'));
  return { ...counts, events: row?.n ?? 0 };
}

/** A person at the IdP: a fresh subject, the given email. */
const person = (email: string, name = 'Pat Example'): TestAccount => ({
  sub: `sub-${randomBytes(6).toString('hex')}`,
  email,
  emailVerified: true,
  name,
});

describeEachDriver('OIDC sign-in over HTTP', (driver) => {
  const identifiers = ssoIdentifiers(60, 'oidc');
  let used = 0;
  const nextIdentifier = () => {
    const identifier = identifiers[used++];
    if (!identifier) throw new Error('out of pre-registered SSO identifiers; raise the count');
    return identifier;
  };
  const log = captureLogLines();
  let idp: TestIdp;
  let t: TestApp;
  let provider: SeededProvider;

  beforeAll(async () => {
    idp = await startOidcIdp({ redirectUris: identifiers.map(oidcRedirectUri) });
    t = await startTestApp(driver, { ssoAllowHttp: true, logStream: log.stream });
    provider = await setupProvider(t);
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
  });
  beforeEach(() => {
    log.raw.length = 0;
  });
  afterEach(() => {
    idp.behaviour = { failDiscovery: false };
  });

  /** A client organization of the provider with OIDC through the test IdP. */
  async function ssoOrganization(options: { jit?: boolean; seats?: number; returnUrls?: string[] } = {}) {
    const identifier = nextIdentifier();
    const org = await createClient(t, provider, { identifier, ...(options.seats ? { seats: options.seats } : {}) });
    must(
      await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
        token: provider.adminToken,
        body: oidcSsoBody(idp, { jit: options.jit ?? false, returnUrls: options.returnUrls ?? [] }),
      }),
      200,
      'configure OIDC',
    );
    return { id: org.id, identifier };
  }

  /**
   * An SSO organization that verified `example.test`, the domain of every test email: SSO attaches
   * an existing account (e.g. a provider admin's) by email only there. Seeded in the database (the
   * DNS round trip is domains.test.ts's); one per app, since a domain is verified by one organization.
   */
  let verifiedOrg: { id: string; identifier: string } | undefined;
  async function organizationWithVerifiedDomain() {
    if (verifiedOrg) return verifiedOrg;
    verifiedOrg = await ssoOrganization();
    await t.testDb.database.db.insert(schema.claimedDomains).values({
      organizationId: verifiedOrg.id,
      id: randomUUID(),
      domain: 'example.test',
      txtValue: 'portico-verification=seeded',
      verifiedAt: t.clock.now,
      createdAt: t.clock.now,
    });
    return verifiedOrg;
  }

  /** The whole browser round trip; answers the app's response to the callback. */
  async function signIn(identifier: string, account: TestAccount, options: { returnTo?: string; accept?: string } = {}) {
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, identifier, account, options);
    return fetchCallback(callbackUrl, { cookie, ...(options.accept ? { accept: options.accept } : {}) });
  }

  const eventTypes = async (oid: string): Promise<string[]> =>
    (must(await t.request('GET', `/api/v1/organizations/${oid}/events`, { token: SYSTEM_TOKEN }), 200, 'events').data as { type: string }[]).map(
      (e) => e.type,
    );

  const memberOf = async (oid: string, memberId: string) => (await membersOf(t, oid)).find((m) => m.id === memberId);

  /** After a refusal: the same rows as `before`, but for `events` refusal events (counts of members/sessions/identities equal). */
  async function expectUnchanged(before: Record<string, number>, options: { refusalEvents: number }) {
    const after = await stateCounts(t);
    expect({ ...after, events: after.events! - options.refusalEvents }).toEqual(before);
  }

  /** A refused callback: problem+json, no token, and a reference. */
  function expectRefusedCallback(res: Awaited<ReturnType<typeof fetchCallback>>, status: number, code: string) {
    expect({ status: res.status, code: res.body?.code }).toEqual({ status, code });
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('location')).toBeNull();
    expect(res.text).not.toMatch(/ps_|pc_/);
    expect(res.body.reference).toEqual(expect.any(String));
  }

  // ───────────────────────────── 1. configuration ─────────────────────────────

  it('PUT stores the OIDC config with a write-only secret: GET shows clientSecretSet, never the secret, and the row holds it sealed', async () => {
    const org = await createClient(t, provider, { identifier: nextIdentifier() });
    const body = oidcSsoBody(idp);
    const put = must(await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, { token: provider.adminToken, body }), 200, 'put');
    const got = must(await t.request('GET', `/api/v1/organizations/${org.id}/sso`, { token: provider.adminToken }), 200, 'get');
    for (const answer of [put, got]) {
      expect(answer).toMatchObject({
        enabled: true,
        kind: 'oidc',
        oidc: { authority: idp.issuer, clientId: body.oidc.clientId, clientSecretSet: true },
        serviceProvider: { oidcRedirectUri: oidcRedirectUri(org.identifier) },
      });
      expect(answer.oidc).not.toHaveProperty('clientSecret');
      expect(JSON.stringify(answer)).not.toContain(body.oidc.clientSecret!);
    }
    const [row] = await t.testDb.database.db.select().from(schema.ssoConfigs).where(eq(schema.ssoConfigs.organizationId, org.id));
    expect(row?.clientSecretSealed).toEqual(expect.any(String));
    expect(row!.clientSecretSealed).not.toContain(body.oidc.clientSecret!);
    expect(JSON.stringify(row!.config)).not.toContain(body.oidc.clientSecret!);
  });

  it('a PUT without clientSecret keeps the stored secret, and sign-in still authenticates to the IdP with it', async () => {
    const org = await ssoOrganization();
    const db = t.testDb.database.db;
    const sealed = async () =>
      (await db.select().from(schema.ssoConfigs).where(eq(schema.ssoConfigs.organizationId, org.id)))[0]?.clientSecretSealed;
    const before = await sealed();
    const put = must(
      await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
        token: provider.adminToken,
        body: oidcSsoBody(idp, { clientSecret: null, jit: true }),
      }),
      200,
      'put without secret',
    );
    expect(put).toMatchObject({ jit: true, oidc: { clientSecretSet: true } });
    expect(await sealed()).toBe(before);
    const res = await signIn(org.identifier, person(uniqueEmail('kept-secret')));
    expect(res.status).toBe(200);
    expect(res.body.token).toMatch(/^ps_/);
  });

  it('invalid bodies answer 400 naming each bad field and store nothing', async () => {
    const org = await createClient(t, provider, { identifier: nextIdentifier() });
    const before = await stateCounts(t);
    const put = (body: unknown) => t.request('PUT', `/api/v1/organizations/${org.id}/sso`, { token: provider.adminToken, body });
    const paths = (res: Awaited<ReturnType<typeof put>>) => (res.body.errors as { path: string }[]).map((e) => e.path).sort();

    const shapes = await put({
      enabled: 'yes',
      kind: 'oidc',
      returnUrls: ['ftp://app.example.test/x', 'https://user:pw@app.example.test/'],
      bogus: 1,
      oidc: { authority: 'not a url', clientId: '', clientSecret: 's', scopes: ['email', 'bad scope'], claims: { email: 'e mail' } },
    });
    expectProblem(shapes, 400);
    expect(paths(shapes)).toEqual(
      [
        'body.bogus',
        'body.enabled',
        'body.oidc.authority',
        'body.oidc.claims.email',
        'body.oidc.clientId',
        'body.oidc.scopes',
        'body.oidc.scopes.1',
        'body.returnUrls.0',
        'body.returnUrls.1',
      ].sort(),
    );

    const missing = await put({ enabled: true, kind: 'oidc' });
    expectProblem(missing, 400);
    expect(paths(missing)).toEqual(['body.oidc']);

    // The first OIDC configuration must carry a secret.
    const noSecret = await put(oidcSsoBody(idp, { clientSecret: null }));
    expectProblem(noSecret, 400);
    expect(paths(noSecret)).toEqual(['body.oidc.clientSecret']);

    expect(await stateCounts(t)).toEqual(before);
    expectProblem(await t.request('GET', `/api/v1/organizations/${org.id}/sso`, { token: provider.adminToken }), 404, 'sso.not_found');
  });

  it('an http authority is refused without SSO_ALLOW_HTTP and nothing is stored', async () => {
    const strict = await startTestApp(driver);
    try {
      const p = await setupProvider(strict);
      const org = must(
        await strict.request('POST', `/api/v1/providers/${p.pid}/clients`, {
          token: p.adminToken,
          body: { name: 'Strict client', plan: 'enterprise', seats: 5 },
        }),
        201,
        'client',
      );
      const before = await stateCounts(strict);
      const res = await strict.request('PUT', `/api/v1/organizations/${org.id}/sso`, { token: p.adminToken, body: oidcSsoBody(idp) });
      expectProblem(res, 400);
      expect(res.body.errors).toEqual([{ path: 'body.oidc.authority', message: expect.stringMatching(/https/) }]);
      expect(await stateCounts(strict)).toEqual(before);
    } finally {
      await strict.close();
    }
  });

  it('a Teams organization cannot configure SSO, and nothing is stored', async () => {
    const org = await createClient(t, provider, { identifier: nextIdentifier(), plan: 'teams' });
    const before = await stateCounts(t);
    const res = await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, { token: provider.adminToken, body: oidcSsoBody(idp) });
    expectProblem(res, 403, 'organization.plan_feature');
    expect(await stateCounts(t)).toEqual(before);
  });

  it('a confirmed member without manageSso is refused (403), and another organization’s admin learns nothing (404)', async () => {
    const org = await createClient(t, provider, { identifier: nextIdentifier() });
    const other = await createClient(t, provider, { identifier: nextIdentifier() });
    const user = await confirmedMember(t, org.id, provider.adminToken, { role: 'user' });
    const otherAdmin = await confirmedMember(t, other.id, provider.adminToken, { role: 'admin' });
    const before = await stateCounts(t);
    const put = (token: string) => t.request('PUT', `/api/v1/organizations/${org.id}/sso`, { token, body: oidcSsoBody(idp) });

    expectProblem(await put(user.token), 403, 'auth.permission_denied');
    expectProblem(await t.request('GET', `/api/v1/organizations/${org.id}/sso`, { token: user.token }), 403, 'auth.permission_denied');
    expectProblem(await put(otherAdmin.token), 404);
    expectProblem(await t.request('GET', `/api/v1/organizations/${org.id}/sso`, { token: otherAdmin.token }), 404);
    expect(await stateCounts(t)).toEqual(before);
  });

  it('turning SSO on and off records organization.ssoEnabled and organization.ssoDisabled', async () => {
    const org = await createClient(t, provider, { identifier: nextIdentifier() });
    const put = (enabled: boolean) =>
      t.request('PUT', `/api/v1/organizations/${org.id}/sso`, { token: provider.adminToken, body: oidcSsoBody(idp, { enabled }) });
    must(await put(true), 200, 'enable');
    expect(await eventTypes(org.id)).toContain('organization.ssoEnabled');
    must(await put(false), 200, 'disable');
    const types = await eventTypes(org.id);
    expect(types.filter((type) => type === 'organization.ssoEnabled')).toHaveLength(1);
    expect(types.filter((type) => type === 'organization.ssoDisabled')).toHaveLength(1);
    // Newest first: disabled after enabled.
    expect(types.indexOf('organization.ssoDisabled')).toBeLessThan(types.indexOf('organization.ssoEnabled'));
    // A disabled configuration signs nobody in.
    const started = await startSignIn(t, org.identifier, { accept: 'application/json' });
    expect(started.status).toBe(404);
    expect(started.location).toBeNull();
  });

  // ───────────────────────────── 2. sign-in ─────────────────────────────

  it('an invited member signs in: accepted, linked to the subject, member.firstSsoLogin, and 200 {token, user, organizationId}', async () => {
    const org = await ssoOrganization();
    const { memberId, email } = await invitedMember(t, org.id, provider.adminToken);
    const account = person(email, 'Ivy Invited');
    const res = await signIn(org.identifier, account);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      token: expect.stringMatching(/^ps_/),
      user: { id: expect.any(String), email },
      organizationId: org.id,
    });
    expect(await memberOf(org.id, memberId)).toMatchObject({ status: 'accepted', userId: res.body.user.id });
    const identities = await t.testDb.database.db.select().from(schema.ssoIdentities).where(eq(schema.ssoIdentities.memberId, memberId));
    expect(identities).toEqual([expect.objectContaining({ issuer: idp.issuer, subject: account.sub, organizationId: org.id })]);
    const types = await eventTypes(org.id);
    expect(types).toContain('member.firstSsoLogin');
    expect(types).toContain('member.accepted');

    const me = must(await t.request('GET', '/api/v1/me', { token: res.body.token }), 200, 'me with the session');
    expect(me.user ?? me).toMatchObject({ email });
  });

  it('an SSO session acts only in its organization: never elsewhere, never as provider staff, and cannot create personal tokens', async () => {
    // The provider's own admin, invited as a member of a client (on a domain it verified), signs in through that client's IdP.
    const org = await organizationWithVerifiedDomain();
    const sibling = await createClient(t, provider, { identifier: nextIdentifier() });
    const { memberId } = await invitedMember(t, org.id, provider.adminToken, { email: provider.adminEmail });
    const res = await signIn(org.identifier, person(provider.adminEmail));
    expect(res.status).toBe(200);
    const session = res.body.token as string;
    expect(res.body.user.id).toBe(provider.adminUserId);
    // The operator confirms: nobody confirms themselves.
    must(await t.request('POST', `/api/v1/organizations/${org.id}/members/${memberId}/confirm`, { token: SYSTEM_TOKEN }), 200, 'confirm');

    must(await t.request('GET', `/api/v1/organizations/${org.id}`, { token: session }), 200, 'own organization');
    // The admin's personal token reaches both; the session reaches neither.
    must(await t.request('GET', `/api/v1/organizations/${sibling.id}`, { token: provider.adminToken }), 200, 'staff reach the sibling');
    expectProblem(await t.request('GET', `/api/v1/organizations/${sibling.id}`, { token: session }), 404);
    expectProblem(await t.request('GET', `/api/v1/organizations/${sibling.id}/members`, { token: session }), 404);
    expectProblem(await t.request('GET', `/api/v1/providers/${provider.pid}`, { token: session }), 404);
    expectProblem(await t.request('GET', `/api/v1/providers/${provider.pid}/clients`, { token: session }), 404);

    const before = await stateCounts(t);
    expectProblem(await t.request('POST', '/api/v1/me/tokens', { token: session, body: { name: 'escape' } }), 403);
    expect(await stateCounts(t)).toEqual(before);
  });

  it('a second sign-in of the same subject finds the same member even when the IdP’s email changed (linked by subject, never by email)', async () => {
    const org = await ssoOrganization();
    const { memberId, email } = await invitedMember(t, org.id, provider.adminToken);
    const account = person(email);
    const first = await signIn(org.identifier, account);
    expect(first.status).toBe(200);

    const before = await stateCounts(t);
    const renamed = { ...account, email: uniqueEmail('renamed-at-idp') };
    const second = await signIn(org.identifier, renamed);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ user: { id: first.body.user.id, email }, organizationId: org.id });
    expect(second.body.token).not.toBe(first.body.token);
    const after = await stateCounts(t);
    expect({ members: after.members, ssoIdentities: after.ssoIdentities, sessions: after.sessions }).toEqual({
      members: before.members,
      ssoIdentities: before.ssoIdentities,
      sessions: before.sessions! + 1,
    });
    expect(await memberOf(org.id, memberId)).toMatchObject({ email, status: 'accepted' });
    expect((await eventTypes(org.id)).filter((type) => type === 'member.firstSsoLogin')).toHaveLength(1);
  });

  it('a person whose email is a member’s but whose subject is not that member’s identity is refused (identityConflict) and changes nothing', async () => {
    const org = await ssoOrganization();
    const { email } = await invitedMember(t, org.id, provider.adminToken);
    expect((await signIn(org.identifier, person(email))).status).toBe(200);
    // Another subject at the IdP claiming the same email.
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(email));
    const before = await stateCounts(t);
    const res = await fetchCallback(callbackUrl, { cookie });
    expectRefusedCallback(res, 403, 'sso.identityConflict');
    await expectUnchanged(before, { refusalEvents: 1 });
  });

  it('a confirmed member without an SSO identity, on a domain the organization has not verified, is refused (identityConflict): the IdP is not trusted for that email', async () => {
    const org = await ssoOrganization({ jit: true });
    const member = await confirmedMember(t, org.id, provider.adminToken, { role: 'user' });
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(member.email));
    const before = await stateCounts(t);
    const res = await fetchCallback(callbackUrl, { cookie });
    expectRefusedCallback(res, 403, 'sso.identityConflict');
    await expectUnchanged(before, { refusalEvents: 1 });
    expect(await memberOf(org.id, member.memberId)).toMatchObject({ status: 'confirmed' });
    expect(await eventTypes(org.id)).toContain('sso.signInRefused');
  });

  it('with JIT on and a free seat an unknown person becomes a member (role user, accepted) with its events', async () => {
    const org = await ssoOrganization({ jit: true, seats: 5 });
    const email = uniqueEmail('jit');
    const before = await stateCounts(t);
    const res = await signIn(org.identifier, person(email, 'Jay Intime'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token: expect.stringMatching(/^ps_/), user: { email }, organizationId: org.id });
    const created = (await membersOf(t, org.id)).filter((m) => m.email === email);
    expect(created).toEqual([expect.objectContaining({ role: 'user', status: 'accepted', userId: res.body.user.id, name: 'Jay Intime' })]);
    const after = await stateCounts(t);
    expect(after.members).toBe(before.members! + 1);
    expect(after.ssoIdentities).toBe(before.ssoIdentities! + 1);
    const events = await eventTypes(org.id);
    for (const type of ['member.invited', 'member.accepted', 'member.firstSsoLogin']) expect(events).toContain(type);
    const [orgRow] = await t.testDb.database.db.select().from(schema.organizations).where(eq(schema.organizations.id, org.id));
    expect(orgRow?.seatsUsed).toBe(1);
  });

  it('with JIT on but no free seat an unknown person is refused (noSeat) and nothing changes', async () => {
    const org = await ssoOrganization({ jit: true, seats: 1 });
    await invitedMember(t, org.id, provider.adminToken); // takes the only seat
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(uniqueEmail('no-seat')));
    const before = await stateCounts(t);
    const res = await fetchCallback(callbackUrl, { cookie });
    expectRefusedCallback(res, 403, 'sso.noSeat');
    await expectUnchanged(before, { refusalEvents: 1 });
  });

  it('with JIT off an unknown person is refused (notMember) and nothing changes', async () => {
    const org = await ssoOrganization({ jit: false });
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(uniqueEmail('stranger')));
    const before = await stateCounts(t);
    const res = await fetchCallback(callbackUrl, { cookie });
    expectRefusedCallback(res, 403, 'sso.notMember');
    await expectUnchanged(before, { refusalEvents: 1 });
  });

  it('a revoked member is refused (memberRevoked), stays revoked, and gets no session', async () => {
    const org = await ssoOrganization({ jit: true });
    const { memberId, email } = await invitedMember(t, org.id, provider.adminToken);
    const account = person(email);
    expect((await signIn(org.identifier, account)).status).toBe(200);
    must(await t.request('POST', `/api/v1/organizations/${org.id}/members/${memberId}/revoke`, { token: provider.adminToken }), 200, 'revoke');

    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, account);
    const before = await stateCounts(t);
    const res = await fetchCallback(callbackUrl, { cookie });
    expectRefusedCallback(res, 403, 'sso.memberRevoked');
    await expectUnchanged(before, { refusalEvents: 1 });
    expect(await memberOf(org.id, memberId)).toMatchObject({ status: 'revoked' });
  });

  it('a returnTo on the list gets a 302 with a one-time code that POST /api/v1/sso/token exchanges once', async () => {
    const org = await ssoOrganization({ returnUrls: [RETURN_URL] });
    const { email } = await invitedMember(t, org.id, provider.adminToken);
    const res = await signIn(org.identifier, person(email), { returnTo: RETURN_URL });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(RETURN_URL);
    const code = location.searchParams.get('code');
    expect(code).toMatch(/^pc_/);
    expect(res.text).not.toContain('ps_');

    const exchanged = must(await t.request('POST', '/api/v1/sso/token', { body: { code } }), 200, 'exchange');
    expect(exchanged).toMatchObject({ token: expect.stringMatching(/^ps_/), user: { email }, organizationId: org.id });
    must(await t.request('GET', '/api/v1/me', { token: exchanged.token }), 200, 'session works');

    const before = await stateCounts(t);
    const again = await t.request('POST', '/api/v1/sso/token', { body: { code } });
    expectProblem(again, 400, 'sso.code_invalid');
    expect(again.body).not.toHaveProperty('token');
    expect(await stateCounts(t)).toEqual(before);
  });

  it('a one-time code older than a minute is refused', async () => {
    const org = await ssoOrganization({ returnUrls: [RETURN_URL] });
    const { email } = await invitedMember(t, org.id, provider.adminToken);
    const res = await signIn(org.identifier, person(email), { returnTo: RETURN_URL });
    expect(res.status).toBe(302);
    const code = new URL(res.headers.get('location')!).searchParams.get('code');
    t.clock.advance(61_000);
    expectProblem(await t.request('POST', '/api/v1/sso/token', { body: { code } }), 400, 'sso.code_invalid');
  });

  it('a returnTo off the organization’s list is refused with 400 and no redirect', async () => {
    const org = await ssoOrganization({ returnUrls: [RETURN_URL] });
    const before = await stateCounts(t);
    for (const returnTo of ['https://evil.example.test/sso/return', `${RETURN_URL}/`, `${RETURN_URL}?x=1`]) {
      const started = await startSignIn(t, org.identifier, { returnTo, accept: 'application/json' });
      expect(started.status).toBe(400);
      expect(started.location).toBeNull();
      expect(JSON.parse(started.body)).toMatchObject({ code: 'sso.transaction_return_url' });
    }
    expect(await stateCounts(t)).toEqual(before);
  });

  it('an SSO session cannot revoke the personal tokens of its account: it is scoped to its organization', async () => {
    // Another provider's admin, legitimately invited as a member of an SSO client (on a domain it verified), signs in through SSO.
    const victim = await setupProvider(t);
    const org = await organizationWithVerifiedDomain();
    await invitedMember(t, org.id, provider.adminToken, { email: victim.adminEmail });
    const res = await signIn(org.identifier, person(victim.adminEmail));
    expect(res.status).toBe(200);
    expect(res.body.user.id).toBe(victim.adminUserId);
    const [personal] = must(await t.request('GET', '/api/v1/me/tokens', { token: victim.adminToken }), 200, 'tokens').data as { id: string }[];
    expect(personal).toBeDefined();

    const before = await stateCounts(t);
    const revoke = await t.request('DELETE', `/api/v1/me/tokens/${personal!.id}`, { token: res.body.token });
    expectProblem(revoke, 403);
    expect(await stateCounts(t)).toEqual(before);
    must(await t.request('GET', `/api/v1/providers/${victim.pid}`, { token: victim.adminToken }), 200, 'the personal token still works');
  });

  it('with JIT on, an IdP asserting the email of an existing account on a domain the organization has not verified is refused (identityConflict) and attaches nothing to that account', async () => {
    // A client's IdP admin can set any email (sso-notes.md): here, the email of another provider's admin.
    const victim = await setupProvider(t);
    const org = await ssoOrganization({ jit: true });
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(victim.adminEmail));
    const before = await stateCounts(t);
    const res = await fetchCallback(callbackUrl, { cookie });
    expectRefusedCallback(res, 403, 'sso.identityConflict');
    await expectUnchanged(before, { refusalEvents: 1 });
    expect((await membersOf(t, org.id)).filter((m) => m.email === victim.adminEmail)).toEqual([]);
  });

  it('with JIT and requireSso on, an IdP asserting a provider admin’s email cannot lock that admin’s personal tokens out', async () => {
    const victim = await setupProvider(t);
    const org = await ssoOrganization({ jit: true });
    for (const type of ['singleOrg', 'requireSso']) {
      must(
        await t.request('PUT', `/api/v1/organizations/${org.id}/policies/${type}`, { token: provider.adminToken, body: { enabled: true } }),
        200,
        `enable ${type}`,
      );
    }
    await signIn(org.identifier, person(victim.adminEmail));
    must(await t.request('GET', `/api/v1/providers/${victim.pid}`, { token: victim.adminToken }), 200, 'the provider admin’s token still works');
  });

  it('an email the IdP marks unverified (email_verified: false) neither accepts an invitation nor provisions a member', async () => {
    const org = await ssoOrganization({ jit: true });
    const { memberId, email } = await invitedMember(t, org.id, provider.adminToken);
    for (const address of [email, uniqueEmail('unverified-jit')]) {
      const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, { ...person(address), emailVerified: false });
      const before = await stateCounts(t);
      const res = await fetchCallback(callbackUrl, { cookie });
      expect(res.status).toBe(403);
      expect(res.body).not.toHaveProperty('token');
      expect(res.body.code).toMatch(/^sso\./);
      await expectUnchanged(before, { refusalEvents: 1 });
    }
    expect(await memberOf(org.id, memberId)).toMatchObject({ status: 'invited' });
  });

  // ───────────────────────────── 3. attacks ─────────────────────────────

  it('a replayed callback (the same URL a second time) is refused and issues no second session', async () => {
    const org = await ssoOrganization();
    const { email } = await invitedMember(t, org.id, provider.adminToken);
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(email));
    expect((await fetchCallback(callbackUrl, { cookie })).status).toBe(200);
    const before = await stateCounts(t);
    expectRefusedCallback(await fetchCallback(callbackUrl, { cookie }), 400, 'sso.transaction_used');
    expect(await stateCounts(t)).toEqual(before);
  });

  it('a callback without the browser cookie, or with another browser’s, is refused (sso.transaction_browser_mismatch)', async () => {
    const org = await ssoOrganization();
    const { memberId, email } = await invitedMember(t, org.id, provider.adminToken);
    const account = person(email);
    // Another browser that started its own sign-in holds a valid cookie of its own.
    const otherBrowser = (await startSignIn(t, org.identifier)).cookie!;
    expect(otherBrowser).toMatch(/^portico_sso_browser=/);

    for (const cookie of [null, otherBrowser]) {
      const { callbackUrl, cookie: own } = await signInAtIdp(t, idp, org.identifier, account);
      expect(own).not.toBe(otherBrowser);
      const before = await stateCounts(t);
      const res = await fetchCallback(callbackUrl, { cookie });
      expectRefusedCallback(res, 400, 'sso.transaction_browser_mismatch');
      await expectUnchanged(before, { refusalEvents: 0 });
      expect(await memberOf(org.id, memberId)).toMatchObject({ status: 'invited' });
    }
  });

  it('a state from organization B’s sign-in is refused at organization A’s callback and signs nobody in', async () => {
    const a = await ssoOrganization({ jit: true });
    const b = await ssoOrganization({ jit: true });
    const account = person(uniqueEmail('cross-org'));
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, b.identifier, account);
    const atA = callbackUrl.replace(`/sso/oidc/${b.identifier}/callback`, `/sso/oidc/${a.identifier}/callback`);
    expect(atA).not.toBe(callbackUrl);
    const before = await stateCounts(t);
    expectRefusedCallback(await fetchCallback(atA, { cookie }), 400, 'sso.transaction_unknown');
    await expectUnchanged(before, { refusalEvents: 0 });
  });

  it('a state presented at another organization’s callback does not use up the sign-in it belongs to', async () => {
    const a = await ssoOrganization({ jit: true });
    const b = await ssoOrganization({ jit: true });
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, b.identifier, person(uniqueEmail('cross-org-burn')));
    const atA = callbackUrl.replace(`/sso/oidc/${b.identifier}/callback`, `/sso/oidc/${a.identifier}/callback`);
    expect((await fetchCallback(atA, { cookie })).status).toBe(400);
    // B's own browser then completes B's sign-in: a refusal elsewhere changed nothing here.
    const atB = await fetchCallback(callbackUrl, { cookie });
    expect({ status: atB.status, code: atB.body?.code }).toEqual({ status: 200, code: undefined });
    expect(atB.body).toMatchObject({ organizationId: b.id });
  });

  it('a tampered state is refused and changes nothing', async () => {
    const org = await ssoOrganization({ jit: true });
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(uniqueEmail('tamper')));
    const url = new URL(callbackUrl);
    const state = url.searchParams.get('state')!;
    expect(state).toMatch(/^st_/);
    const last = state.at(-1) === 'A' ? 'B' : 'A';
    const before = await stateCounts(t);
    for (const forged of [`${state.slice(0, -1)}${last}`, '', 'st_x']) {
      const tampered = new URL(url);
      if (forged) tampered.searchParams.set('state', forged);
      else tampered.searchParams.delete('state');
      const res = await fetchCallback(tampered.href, { cookie });
      expect(res.status).toBe(400);
      expect(['sso.transaction_unknown', 'oidc.stateMismatch']).toContain(res.body.code);
    }
    await expectUnchanged(before, { refusalEvents: 0 });
  });

  it('an IdP error answers a clean page for a browser and problem+json for an API client, each with a reference in the log, never a 500', async () => {
    const org = await ssoOrganization({ jit: true });
    const before = await stateCounts(t);

    const page = await signInAtIdp(t, idp, org.identifier, { deny: 'access_denied' });
    expect(new URL(page.callbackUrl).searchParams.get('error')).toBe('access_denied');
    const html = await fetchCallback(page.callbackUrl, { cookie: page.cookie, accept: 'text/html,application/xhtml+xml' });
    expect(html.status).toBe(400);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(html.text).toContain('Sign-in failed');
    const htmlReference = /<code>([^<]+)<\/code>/.exec(html.text)?.[1];
    expect(htmlReference).toEqual(expect.any(String));

    const api = await signInAtIdp(t, idp, org.identifier, { deny: 'access_denied' });
    const json = await fetchCallback(api.callbackUrl, { cookie: api.cookie, accept: 'application/json' });
    expectRefusedCallback(json, 400, 'oidc.idpError');
    expect(json.body.reference).not.toBe(htmlReference);

    for (const res of [html, json]) {
      expect(res.status).toBeLessThan(500);
      expect(res.text).not.toMatch(/\bat .+\.(?:ts|js):\d+|Error:|node_modules/);
    }
    const entries = log.entries();
    for (const reference of [htmlReference!, json.body.reference as string]) {
      expect(entries.some((e) => e.reference === reference && e.sso?.code === 'oidc.idpError')).toBe(true);
    }
    // The transactions were used, nothing else happened.
    const after = await stateCounts(t);
    expect({ members: after.members, sessions: after.sessions, ssoIdentities: after.ssoIdentities, events: after.events }).toEqual({
      members: before.members,
      sessions: before.sessions,
      ssoIdentities: before.ssoIdentities,
      events: before.events,
    });
  });

  it('SSO disabled between the login and the callback refuses the callback', async () => {
    const org = await ssoOrganization({ jit: true });
    const { memberId, email } = await invitedMember(t, org.id, provider.adminToken);
    const { callbackUrl, cookie } = await signInAtIdp(t, idp, org.identifier, person(email));
    must(
      await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
        token: provider.adminToken,
        body: oidcSsoBody(idp, { enabled: false, clientSecret: null, jit: true }),
      }),
      200,
      'disable mid-flight',
    );
    const before = await stateCounts(t);
    const res = await fetchCallback(callbackUrl, { cookie });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body).not.toHaveProperty('token');
    expect(['sso.notConfigured', 'sso.disabled']).toContain(res.body.code);
    await expectUnchanged(before, { refusalEvents: 0 });
    expect(await memberOf(org.id, memberId)).toMatchObject({ status: 'invited' });
  });

  // ───────────────────────────── 4. requireSso ─────────────────────────────

  it('under singleOrg + requireSso a user gets no personal token: acceptance answers apiToken null, an existing token is refused, SSO sessions work, owners and admins are exempt', async () => {
    const org = await ssoOrganization();
    const owner = await confirmedMember(t, org.id, provider.adminToken, { role: 'owner' });
    const admin = await confirmedMember(t, org.id, provider.adminToken, { role: 'admin' });
    const existing = await confirmedMember(t, org.id, provider.adminToken, { role: 'user' });
    must(await t.request('GET', '/api/v1/me', { token: existing.token }), 200, 'token works before the policy');

    for (const type of ['singleOrg', 'requireSso']) {
      must(
        await t.request('PUT', `/api/v1/organizations/${org.id}/policies/${type}`, { token: provider.adminToken, body: { enabled: true } }),
        200,
        `enable ${type}`,
      );
    }

    // A new invitation accepted now yields no personal token.
    const fresh = await invitedMember(t, org.id, provider.adminToken, { role: 'user' });
    const accepted = must(
      await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(fresh.email) } }),
      200,
      'accept under requireSso',
    );
    expect(accepted.apiToken).toBeNull();
    expect(accepted.member).toMatchObject({ status: 'accepted' });

    // The existing personal token of a user is refused.
    expectProblem(await t.request('GET', '/api/v1/me', { token: existing.token }), 403, 'auth.sso_required');
    expectProblem(await t.request('GET', `/api/v1/organizations/${org.id}`, { token: existing.token }), 403, 'auth.sso_required');

    // A session from the organization's SSO works (a member invited after the policy, signed in through SSO).
    const viaSso = await invitedMember(t, org.id, provider.adminToken, { role: 'user' });
    const signedIn = await signIn(org.identifier, person(viaSso.email));
    expect(signedIn.status).toBe(200);
    must(await t.request('GET', '/api/v1/me', { token: signedIn.body.token }), 200, 'SSO session under requireSso');

    // Owners and admins keep their tokens, so a broken IdP locks nobody out.
    must(await t.request('GET', '/api/v1/me', { token: owner.token }), 200, 'owner token');
    must(await t.request('GET', '/api/v1/me', { token: admin.token }), 200, 'admin token');
    must(await t.request('GET', `/api/v1/organizations/${org.id}/members`, { token: admin.token }), 200, 'admin token on the org');
  });

  // ───────────────────────────── 5. /sso/login ─────────────────────────────

  it('/sso/login renders a page with a labelled input', async () => {
    const res = await fetch(`${t.url}/sso/login`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/<label for="login">[^<]+<\/label>/);
    expect(html).toMatch(/<input id="login" name="login"/);
  });

  it('/sso/login?login=<identifier> redirects to that organization’s login', async () => {
    const org = await ssoOrganization();
    const res = await fetch(`${t.url}/sso/login?login=${org.identifier}`, { redirect: 'manual', headers: { accept: 'text/html' } });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(`/sso/${org.identifier}/login`);
  });

  it('/sso/login with an unknown identifier answers the page with 404 and says so', async () => {
    const res = await fetch(`${t.url}/sso/login?login=no-such-org-${randomBytes(3).toString('hex')}`, {
      redirect: 'manual',
      headers: { accept: 'text/html' },
    });
    expect(res.status).toBe(404);
    expect(res.headers.get('location')).toBeNull();
    const html = await res.text();
    expect(html).toContain('role="alert"');
    expect(html).toContain('aria-invalid="true"');
  });

  it('an accepted member (not via SSO) keeps its personal token when requireSso is off', async () => {
    // Control for the requireSso test: the refusal comes from the policy, not from SSO being configured.
    const org = await ssoOrganization();
    const member = await acceptedMember(t, org.id, provider.adminToken, { role: 'user' });
    must(await t.request('GET', '/api/v1/me', { token: member.token }), 200, 'token without the policy');
  });
});
