/**
 * SAML sign-in end to end over HTTP: the app's /sso routes, a SAML IdP that signs real XML
 * (test/support/saml-idp.ts), the engine's transactions, replay cache and membership. The
 * protocol checks one by one are test/sso/saml.test.ts's; here each refusal is also shown to
 * change nothing and to answer in the caller's format with a reference that is in the log.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { count, eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { createClient, expectProblem, invitedMember, must, setupProvider, tableCounts, uniqueEmail, type SeededProvider } from '../support/http-seed.js';
import { createTestIdp, encode, type TestIdp } from '../support/saml-idp.js';

const PUBLIC_URL = 'http://portico.test';
const TRANSIENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';

interface SamlOrg {
  id: string;
  identifier: string;
  acsUrl: string;
  entityId: string;
  idp: TestIdp;
}

describeEachDriver('SAML sign-in over HTTP', (driver) => {
  let t: TestApp;
  let provider: SeededProvider;
  const lines: string[] = [];

  beforeAll(async () => {
    t = await startTestApp(driver, {
      // The metadata-URL test serves metadata over plain http on 127.0.0.1.
      ssoAllowHttp: true,
      logStream: { write: (line: string) => void lines.push(line) },
      rateLimits: { authFailuresPerClient: 0, scimFailuresPerOrganization: 0, authWindowSeconds: 900 },
    });
    provider = await setupProvider(t);
  });
  afterAll(() => t.close());
  beforeEach(() => {
    lines.length = 0;
  });

  const admin = () => provider.adminToken;

  async function samlOrg(options: { allowUnsolicited?: boolean; jit?: boolean; returnUrls?: string[]; seats?: number } = {}): Promise<SamlOrg> {
    const identifier = `saml-${randomBytes(4).toString('hex')}`;
    const org = await createClient(t, provider, { identifier, ...(options.seats ? { seats: options.seats } : {}) });
    const acsUrl = `${PUBLIC_URL}/sso/saml/${identifier}/acs`;
    const entityId = `${PUBLIC_URL}/sso/saml/${identifier}/metadata`;
    const idp = await createTestIdp({ acsUrl, spEntityId: entityId, entityId: `https://idp.test.local/${identifier}` });
    must(
      await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
        token: admin(),
        body: {
          enabled: true,
          kind: 'saml',
          jit: options.jit ?? false,
          returnUrls: options.returnUrls ?? [],
          saml: { idpMetadataXml: idp.metadata(), allowUnsolicited: options.allowUnsolicited ?? false },
        },
      }),
      200,
      'configure SAML',
    );
    return { id: org.id, identifier, acsUrl, entityId, idp };
  }

  /** `GET /sso/:identifier/login`: the AuthnRequest's ID and the RelayState the IdP must echo. */
  async function startLogin(org: SamlOrg, returnTo?: string) {
    const query = returnTo ? `?returnTo=${encodeURIComponent(returnTo)}` : '';
    const res = await fetch(`${t.url}/sso/${org.identifier}/login${query}`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = res.headers.get('location')!;
    const metadata = await (await fetch(`${t.url}/sso/saml/${org.identifier}/metadata`)).text();
    const request = await org.idp.readAuthnRequest(metadata, location);
    return { requestId: request.id, relayState: new URL(location).searchParams.get('RelayState')!, location };
  }

  async function postAcs(org: SamlOrg, fields: Record<string, string>, accept = 'application/json') {
    const res = await fetch(`${t.url}/sso/saml/${org.identifier}/acs`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept },
      body: new URLSearchParams(fields).toString(),
    });
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      // a page
    }
    return { status: res.status, headers: res.headers, body };
  }

  const members = async (organizationId: string) =>
    t.testDb.database.db.select().from(schema.members).where(eq(schema.members.organizationId, organizationId));
  const sessions = async () => (await t.testDb.database.db.select({ n: count() }).from(schema.sessions))[0]!.n;

  it('serves SP metadata naming the entity id and the ACS, derived from PUBLIC_URL', async () => {
    const org = await samlOrg();
    const res = await fetch(`${t.url}/sso/saml/${org.identifier}/metadata`);
    expect(res.status).toBe(200);
    const xml = await res.text();
    expect(xml).toContain(`entityID="${org.entityId}"`);
    expect(xml).toContain(`Location="${org.acsUrl}"`);
    const config = must(await t.request('GET', `/api/v1/organizations/${org.id}/sso`, { token: admin() }), 200, 'read config');
    expect(config.serviceProvider).toMatchObject({ samlEntityId: org.entityId, samlAcsUrl: org.acsUrl });
    expect(config.saml).toMatchObject({ idpEntityId: `https://idp.test.local/${org.identifier}`, wantAssertionsSigned: true });
  });

  it('an invited member signs in: accepted, linked to the NameID, first-login event, a session that works', async () => {
    const org = await samlOrg();
    const { memberId, email } = await invitedMember(t, org.id, admin());
    const { requestId, relayState } = await startLogin(org);
    const res = await postAcs(org, {
      SAMLResponse: org.idp.response({ inResponseTo: requestId, nameId: email, attributes: { email: [email], displayName: ['Ada L'] }, sign: 'both' }),
      RelayState: relayState,
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token: expect.stringMatching(/^ps_/), organizationId: org.id, user: { email } });
    const [member] = (await members(org.id)).filter((m) => m.id === memberId);
    expect(member).toMatchObject({ status: 'accepted' });
    const me = must(await t.request('GET', '/api/v1/me', { token: res.body.token }), 200, 'me');
    expect(me.organizations).toEqual([expect.objectContaining({ organizationId: org.id, memberId, status: 'accepted' })]);
    const events = must(await t.request('GET', `/api/v1/organizations/${org.id}/events`, { token: admin() }), 200, 'events');
    expect(events.data.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(['member.accepted', 'member.firstSsoLogin']));
  });

  it('a response posted twice is refused the second time, and an IdP-initiated replay hits the replay cache', async () => {
    const org = await samlOrg({ allowUnsolicited: true });
    const { email } = await invitedMember(t, org.id, admin());
    const { requestId, relayState } = await startLogin(org);
    const fields = {
      SAMLResponse: org.idp.response({ inResponseTo: requestId, nameId: email, attributes: { email: [email] }, sign: 'both' }),
      RelayState: relayState,
    };
    expect((await postAcs(org, fields)).status).toBe(200);
    const before = await sessions();
    const again = await postAcs(org, fields);
    expectProblem(again as never, 400, 'sso.transaction_used');

    const unsolicited = { SAMLResponse: org.idp.response({ inResponseTo: null, nameId: email, attributes: { email: [email] }, sign: 'both' }) };
    expect((await postAcs(org, unsolicited)).status).toBe(200);
    const replayed = await postAcs(org, unsolicited);
    expectProblem(replayed as never, 400, 'saml.replay');
    expect(await sessions()).toBe(before + 1);
  });

  it('an unsolicited response is refused unless the organization allows IdP-initiated sign-in', async () => {
    const org = await samlOrg();
    const { email } = await invitedMember(t, org.id, admin());
    const before = await tableCounts(t);
    const res = await postAcs(org, { SAMLResponse: org.idp.response({ inResponseTo: null, nameId: email, attributes: { email: [email] }, sign: 'both' }) });
    expectProblem(res as never, 400, 'saml.unsolicited');
    expect((await members(org.id)).find((m) => m.email === email)?.status).toBe('invited');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('organization B’s valid response posted to organization A is refused, and nothing changes', async () => {
    const a = await samlOrg({ jit: true });
    const b = await samlOrg({ jit: true });
    const email = uniqueEmail('crossing');
    const startedA = await startLogin(a);
    const startedB = await startLogin(b);
    const fromB = b.idp.response({ inResponseTo: startedB.requestId, nameId: email, attributes: { email: [email] }, sign: 'both' });
    const before = await tableCounts(t);
    // B's response with A's transaction, and B's response with B's own transaction at A's ACS.
    const withA = await postAcs(a, { SAMLResponse: fromB, RelayState: startedA.relayState });
    expect(withA.status).toBe(400);
    const withB = await postAcs(a, { SAMLResponse: fromB, RelayState: startedB.relayState });
    expect(withB.status).toBe(400);
    expect(await tableCounts(t)).toEqual(before);
    expect(await members(a.id)).toHaveLength(0);
  });

  it('a response to another request (wrong InResponseTo) is refused', async () => {
    const org = await samlOrg();
    const { email } = await invitedMember(t, org.id, admin());
    const { relayState } = await startLogin(org);
    const res = await postAcs(org, {
      SAMLResponse: org.idp.response({ inResponseTo: '_someone-elses-request', nameId: email, attributes: { email: [email] }, sign: 'both' }),
      RelayState: relayState,
    });
    expectProblem(res as never, 400, 'saml.inResponseTo');
    expect((await members(org.id)).find((m) => m.email === email)?.status).toBe('invited');
  });

  it('a transient NameID is refused: it names nobody twice', async () => {
    const org = await samlOrg({ jit: true });
    const email = uniqueEmail('transient');
    const { requestId, relayState } = await startLogin(org);
    const res = await postAcs(org, {
      SAMLResponse: org.idp.response({ inResponseTo: requestId, nameId: '_t' + randomBytes(8).toString('hex'), nameIdFormat: TRANSIENT, attributes: { email: [email] }, sign: 'both' }),
      RelayState: relayState,
    });
    expectProblem(res as never, 400, 'saml.subjectMissing');
    expect(await members(org.id)).toHaveLength(0);
  });

  it('just-in-time: an unknown person becomes a member (role user, accepted) and returns to an allowed URL with a one-time code', async () => {
    const returnTo = 'https://app.example.test/signed-in';
    const org = await samlOrg({ jit: true, returnUrls: [returnTo] });
    const email = uniqueEmail('jit');
    const { requestId, relayState } = await startLogin(org, returnTo);
    const res = await postAcs(org, {
      SAMLResponse: org.idp.response({ inResponseTo: requestId, nameId: email, attributes: { email: [email], displayName: ['Jit Person'] }, sign: 'both' }),
      RelayState: relayState,
    });
    expect(res.status).toBe(302);
    const target = new URL(res.headers.get('location')!);
    expect(`${target.origin}${target.pathname}`).toBe(returnTo);
    const code = target.searchParams.get('code')!;
    const session = must(await t.request('POST', '/api/v1/sso/token', { body: { code } }), 200, 'exchange');
    expect(session).toMatchObject({ organizationId: org.id, user: { email } });
    expectProblem(await t.request('POST', '/api/v1/sso/token', { body: { code } }), 400, 'sso.code_invalid');
    expect(await members(org.id)).toEqual([expect.objectContaining({ email, role: 'user', status: 'accepted', name: 'Jit Person' })]);
  });

  it('a return URL off the list is refused before anyone is sent to the IdP', async () => {
    const org = await samlOrg({ returnUrls: ['https://app.example.test/ok'] });
    const res = await fetch(`${t.url}/sso/${org.identifier}/login?returnTo=${encodeURIComponent('https://evil.example/steal')}`, {
      redirect: 'manual',
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect((await res.json()).code).toBe('sso.transaction_return_url');
  });

  it('a failure answers a page to a browser and problem+json to an API client, each with a reference that is in the log', async () => {
    const org = await samlOrg();
    const forged = encode('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">not signed</samlp:Response>');
    const page = await postAcs(org, { SAMLResponse: forged }, 'text/html');
    expect(page.status).toBe(400);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const reference = /<code>([^<]+)<\/code>/.exec(page.body as string)![1]!;
    expect(page.body).not.toMatch(/at .*\.ts:\d+/);
    const api = await postAcs(org, { SAMLResponse: forged });
    expect(api.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(api.body.reference).toEqual(expect.any(String));
    const logged = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'SSO sign-in failed');
    expect(logged.map((entry) => entry.reference)).toEqual(expect.arrayContaining([reference, api.body.reference]));
  });

  it('an ACS body over the cap answers 413 without reading it', async () => {
    const org = await samlOrg();
    const res = await postAcs(org, { SAMLResponse: 'A'.repeat(300 * 1024) });
    expect(res.status).toBe(413);
  });

  it('a sign-in at an organization without SSO, or with SSO disabled, is a clean 404', async () => {
    const org = await samlOrg();
    must(
      await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
        token: admin(),
        body: { enabled: false, kind: 'saml', jit: false, saml: { idpMetadataXml: org.idp.metadata() } },
      }),
      200,
      'disable',
    );
    const res = await fetch(`${t.url}/sso/${org.identifier}/login`, { redirect: 'manual', headers: { accept: 'application/json' } });
    expect(res.status).toBe(404);
    expect((await res.json()).code).toBe('sso.notConfigured');
    const nowhere = await fetch(`${t.url}/sso/no-such-org/login`, { redirect: 'manual', headers: { accept: 'text/html' } });
    expect(nowhere.status).toBe(404);
  });

  it('a client whose IdP answers keep failing validation is throttled (429 with Retry-After), refusals of valid answers are not counted', async () => {
    const limited = await startTestApp(driver, { rateLimits: { authFailuresPerClient: 2, scimFailuresPerOrganization: 0, authWindowSeconds: 900 } });
    try {
      const staff = await setupProvider(limited);
      const identifier = `saml-${randomBytes(4).toString('hex')}`;
      const org = await createClient(limited, staff, { identifier });
      const acsUrl = `${PUBLIC_URL}/sso/saml/${identifier}/acs`;
      const idp = await createTestIdp({ acsUrl, spEntityId: `${PUBLIC_URL}/sso/saml/${identifier}/metadata` });
      must(
        await limited.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
          token: staff.adminToken,
          body: { enabled: true, kind: 'saml', jit: false, saml: { idpMetadataXml: idp.metadata(), allowUnsolicited: true } },
        }),
        200,
        'configure',
      );
      const post = (SAMLResponse: string) =>
        fetch(`${limited.url}/sso/saml/${identifier}/acs`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({ SAMLResponse }).toString(),
        });
      // A valid answer for a non-member is refused (403) but costs nothing.
      const stranger = uniqueEmail('stranger');
      for (let i = 0; i < 3; i++) {
        expect((await post(idp.response({ inResponseTo: null, nameId: stranger, attributes: { email: [stranger] }, sign: 'both' }))).status).toBe(403);
      }
      const unsigned = idp.response({ inResponseTo: null, nameId: stranger, sign: 'none' });
      expect((await post(unsigned)).status).toBe(400);
      expect((await post(unsigned)).status).toBe(400);
      const throttled = await post(idp.response({ inResponseTo: null, nameId: stranger, attributes: { email: [stranger] }, sign: 'both' }));
      expect(throttled.status).toBe(429);
      expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await throttled.json()).code).toBe('rate.limited');
    } finally {
      await limited.close();
    }
  });

  it('the IdP metadata can be given as a URL: fetched once at configuration, never through a redirect; an unreachable or invalid one names the field', async () => {
    const identifier = `saml-${randomBytes(4).toString('hex')}`;
    const org = await createClient(t, provider, { identifier });
    const idp = await createTestIdp({ acsUrl: `${PUBLIC_URL}/sso/saml/${identifier}/acs`, spEntityId: `${PUBLIC_URL}/sso/saml/${identifier}/metadata` });
    let fetches = 0;
    const server = createServer((req, res) => {
      fetches += 1;
      if (req.url === '/metadata.xml') return void res.writeHead(200, { 'content-type': 'application/xml' }).end(idp.metadata());
      if (req.url === '/moved') return void res.writeHead(302, { location: '/metadata.xml' }).end();
      if (req.url === '/junk') return void res.writeHead(200).end('<html>not metadata</html>');
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const put = (idpMetadataUrl: string) =>
      t.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
        token: admin(),
        body: { enabled: true, kind: 'saml', jit: false, saml: { idpMetadataUrl } },
      });
    try {
      for (const bad of [`${base}/moved`, `${base}/missing`, `${base}/junk`, 'http://127.0.0.1:1/metadata.xml']) {
        const res = await put(bad);
        expectProblem(res, 400, 'input.invalid');
        expect(res.body.errors).toEqual([expect.objectContaining({ path: 'body.saml.idpMetadataUrl' })]);
      }
      expectProblem(await t.request('GET', `/api/v1/organizations/${org.id}/sso`, { token: admin() }), 404, 'sso.not_found');
      const before = fetches;
      const config = must(await put(`${base}/metadata.xml`), 200, 'configure by URL');
      expect(fetches).toBe(before + 1);
      expect(config.saml).toMatchObject({ idpEntityId: idp.entityId, idpSsoUrl: idp.ssoUrl, idpMetadataUrl: `${base}/metadata.xml` });
      expect(config.saml.idpCertificates).toHaveLength(1);
    } finally {
      server.close();
    }
  });

  it('with the POST binding the login page posts the AuthnRequest and RelayState to the IdP by itself (a nonce-allowed script, a button without script)', async () => {
    const identifier = `saml-${randomBytes(4).toString('hex')}`;
    const org = await createClient(t, provider, { identifier });
    const acsUrl = `${PUBLIC_URL}/sso/saml/${identifier}/acs`;
    const idp = await createTestIdp({ acsUrl, spEntityId: `${PUBLIC_URL}/sso/saml/${identifier}/metadata` });
    must(
      await t.request('PUT', `/api/v1/organizations/${org.id}/sso`, {
        token: admin(),
        body: { enabled: true, kind: 'saml', jit: false, saml: { idpMetadataXml: idp.metadata(), binding: 'post' } },
      }),
      200,
      'configure',
    );
    const res = await fetch(`${t.url}/sso/${identifier}/login`, { redirect: 'manual' });
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1]!;
    const html = await res.text();
    expect(html).toContain(`<form id="saml" method="post" action="${idp.ssoUrl}">`);
    expect(html).toContain(`<script nonce="${nonce}">`);
    expect(html).toMatch(/<button type="submit">/);
    const request = /name="SAMLRequest" value="([^"]+)"/.exec(html)![1]!;
    const relayState = /name="RelayState" value="([^"]+)"/.exec(html)![1]!;
    expect(relayState).toMatch(/^st_/);
    const xml = Buffer.from(request, 'base64').toString('utf8');
    expect(xml).toContain(`AssertionConsumerServiceURL="${acsUrl}"`);
  });

  it('a session lasts 8 hours; pruning deletes expired sessions, transactions and replay entries and keeps live ones', async () => {
    const org = await samlOrg({ allowUnsolicited: true });
    const { email } = await invitedMember(t, org.id, admin());
    const res = await postAcs(org, { SAMLResponse: org.idp.response({ inResponseTo: null, nameId: email, attributes: { email: [email] }, sign: 'both' }) });
    expect(res.status).toBe(200);
    const session = res.body.token as string;
    // Started and never finished: its transaction expires after 10 minutes.
    await startLogin(org);
    const db = t.testDb.database.db;
    const rows = async () => ({
      sessions: (await db.select({ n: count() }).from(schema.sessions).where(eq(schema.sessions.organizationId, org.id)))[0]!.n,
      transactions: (await db.select({ n: count() }).from(schema.ssoTransactions).where(eq(schema.ssoTransactions.organizationId, org.id)))[0]!.n,
      replays: (await db.select({ n: count() }).from(schema.ssoReplays).where(eq(schema.ssoReplays.organizationId, org.id)))[0]!.n,
    });
    expect(await rows()).toEqual({ sessions: 1, transactions: 1, replays: 1 });
    await t.engine.signIn.prune();
    expect(await rows()).toEqual({ sessions: 1, transactions: 1, replays: 1 });
    must(await t.request('GET', '/api/v1/me', { token: session }), 200, 'a live session');

    // The replay entry lives until the assertion expires by the IdP's (real) clock; move the app's past both.
    const assertionEnds = Date.now() + 10 * 60_000;
    t.clock.advance(Math.max(8 * 3_600_000, assertionEnds - t.clock.now.getTime()) + 1_000);
    expectProblem(await t.request('GET', '/api/v1/me', { token: session }), 401, 'auth.unauthenticated');
    await t.engine.signIn.prune();
    expect(await rows()).toEqual({ sessions: 0, transactions: 0, replays: 0 });
  });
});
