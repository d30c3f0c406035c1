/**
 * Claimed domains (domain.md "SSO and claimed domains", design.md "SSO"): claim, publish the TXT
 * record, verify through DNS, re-check on a schedule, and route `/sso/login?login=` by a verified
 * domain. DNS is a real server on 127.0.0.1 (test/support/dns-server.ts) reached through the
 * production resolver (`createTxtResolver`), so lookups cross node:dns and the wire as with DNS_SERVERS.
 */
import { randomBytes } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { schema } from '../../src/db/index.js';
import { createTxtResolver } from '../../src/sso/dns.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.js';
import {
  confirmedMember,
  countEvents,
  createClient,
  expectProblem,
  must,
  setupProvider,
  tableCounts,
  type SeededProvider,
} from '../support/http-seed.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// The resolver's own timeout (src/sso/dns.ts) is what a silent server costs; leave it room.
const SILENT_SERVER_MS = 20_000;

/** A fresh domain nobody has claimed: tests share one database and one DNS zone. */
const freshDomain = (label = 'corp') => `${label}-${randomBytes(4).toString('hex')}.example.test`;

interface Claim {
  id: string;
  domain: string;
  txtName: string;
  txtRecord: string;
  verified: boolean;
  verifiedAt: string | null;
  lastCheckedAt: string | null;
}

describe('createTxtResolver against a real DNS server', () => {
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await startDnsServer();
  });
  afterAll(() => dns.close());
  beforeEach(() => dns.fail(null));

  const resolveTxt = () => createTxtResolver([dns.address]);
  const codeOf = (promise: Promise<unknown>) => promise.then(() => 'resolved', (e: { code?: string }) => e.code);

  it('answers each TXT record as its character-strings, asking only the configured server', async () => {
    const name = `_portico-verification.${freshDomain()}`;
    dns.setTxt(name, [['v=spf1', ' -all'], ['portico-verification=abc']]);
    const before = dns.queries;
    const records = await resolveTxt()(name);
    expect(records).toHaveLength(2);
    expect(records).toEqual(expect.arrayContaining([['v=spf1', ' -all'], ['portico-verification=abc']]));
    expect(dns.queries).toBeGreaterThan(before);
  });

  it('splits a value longer than 255 bytes into character-strings, as real servers do', async () => {
    const name = `_portico-verification.${freshDomain()}`;
    const value = `portico-verification=${'x'.repeat(600)}`;
    dns.setTxt(name, [value]);
    const [record] = await resolveTxt()(name);
    expect(record!.map((part) => part.length)).toEqual([255, 255, value.length - 510]);
    expect(record!.join('')).toBe(value);
  });

  it('still resolves an answer too large for UDP (truncated, then retried over TCP)', async () => {
    const name = `_portico-verification.${freshDomain()}`;
    const values = Array.from({ length: 12 }, (_, i) => `${i}-${'y'.repeat(300)}`);
    dns.setTxt(name, values);
    const records = await resolveTxt()(name);
    expect(records.map((parts) => parts.join('')).sort()).toEqual([...values].sort());
  });

  it('matches names case-insensitively and ignores a trailing dot', async () => {
    const domain = freshDomain();
    dns.setTxt(`_portico-verification.${domain}`, ['v']);
    expect(await resolveTxt()(`_PORTICO-verification.${domain.toUpperCase()}.`)).toEqual([['v']]);
  });

  it('reports an unknown name as ENOTFOUND and a known name without TXT records as ENODATA', async () => {
    const domain = freshDomain();
    dns.setTxt(`_portico-verification.${domain}`, ['v']);
    dns.setTxt(`empty.${domain}`, []);
    expect(await codeOf(resolveTxt()(`nothing.${domain}`))).toBe('ENOTFOUND');
    expect(await codeOf(resolveTxt()(`empty.${domain}`))).toBe('ENODATA');
    // The domain above a published name exists (RFC 8020) and holds no TXT record.
    expect(await codeOf(resolveTxt()(domain))).toBe('ENODATA');
    dns.remove(`_portico-verification.${domain}`);
    expect(await codeOf(resolveTxt()(`_portico-verification.${domain}`))).toBe('ENOTFOUND');
  });

  it('reports a failing server as ESERVFAIL and a silent one as ETIMEOUT', { timeout: SILENT_SERVER_MS }, async () => {
    const name = `_portico-verification.${freshDomain()}`;
    dns.setTxt(name, ['v']);
    dns.fail('servfail');
    expect(await codeOf(resolveTxt()(name))).toBe('ESERVFAIL');
    dns.fail('timeout');
    expect(await codeOf(resolveTxt()(name))).toBe('ETIMEOUT');
    dns.fail(null);
    expect(await resolveTxt()(name)).toEqual([['v']]);
  });
});

describeEachDriver('claimed domains', (driver) => {
  let dns: TestDnsServer;
  let t: TestApp;
  let provider: SeededProvider;
  let org: { id: string; identifier: string };
  let base: string;

  beforeAll(async () => {
    dns = await startDnsServer();
    t = await startTestApp(driver, { resolveTxt: createTxtResolver([dns.address]), ssoAllowHttp: true });
  });
  afterAll(async () => {
    await t?.close();
    await dns?.close();
  });
  beforeEach(async () => {
    dns.fail(null);
    provider = await setupProvider(t);
    org = await enterpriseClient();
    base = `/api/v1/organizations/${org.id}/domains`;
  });

  const enterpriseClient = async () => {
    const created = await createClient(t, provider, { plan: 'enterprise' });
    return { id: created.id, identifier: created.identifier };
  };
  /**
   * The provider admin reads each organization first: its first access in an hour records an
   * organization.accessed event (an audit of access, not a change), which "changes nothing" must not count.
   */
  const touch = async (...oids: string[]) => {
    for (const oid of oids) must(await t.request('GET', `/api/v1/organizations/${oid}`, { token: provider.adminToken }), 200, 'read organization');
  };
  const domainsOf = (oid: string) => `/api/v1/organizations/${oid}/domains`;
  const add = (domain: unknown, options: { oid?: string; token?: string } = {}) =>
    t.request('POST', domainsOf(options.oid ?? org.id), { token: options.token ?? provider.adminToken, body: { domain } });
  const claim = async (domain = freshDomain(), oid = org.id): Promise<Claim> =>
    must(await add(domain, { oid }), 201, `claim ${domain}`);
  const verify = (id: string, options: { oid?: string; token?: string } = {}) =>
    t.request('POST', `${domainsOf(options.oid ?? org.id)}/${id}/verify`, { token: options.token ?? provider.adminToken });
  const publish = (c: Pick<Claim, 'txtName' | 'txtRecord'>) => dns.setTxt(c.txtName, [c.txtRecord]);
  const verified = async (domain = freshDomain(), oid = org.id): Promise<Claim> => {
    const c = await claim(domain, oid);
    publish(c);
    const body = must(await verify(c.id, { oid }), 200, `verify ${domain}`);
    expect(body.verified).toBe(true);
    return body;
  };
  const list = async (oid = org.id): Promise<Claim[]> =>
    must(await t.request('GET', domainsOf(oid), { token: provider.adminToken }), 200, 'list domains').data;
  const storedRow = async (id: string) => {
    const [row] = await t.testDb.database.db.select().from(schema.claimedDomains).where(eq(schema.claimedDomains.id, id));
    return row;
  };
  const singleOrgEnabled = async (oid = org.id): Promise<boolean> => {
    const policies = must(await t.request('GET', `/api/v1/organizations/${oid}/policies`, { token: SYSTEM_TOKEN }), 200, 'policies');
    return (policies.data as { type: string; enabled: boolean }[]).find((p) => p.type === 'singleOrg')!.enabled;
  };
  const events = (type: string, oid = org.id) => countEvents(t, { organizationId: oid, type });
  const domainEvents = async (oid = org.id) => ({
    added: await events('domain.added', oid),
    verified: await events('domain.verified', oid),
    notVerified: await events('domain.notVerified', oid),
    removed: await events('domain.removed', oid),
    policyUpdated: await events('policy.updated', oid),
  });
  const ssoLogin = (login: string) => fetch(`${t.url}/sso/login?login=${encodeURIComponent(login)}`, { redirect: 'manual' });
  const enableSso = async (oid = org.id) =>
    must(
      await t.request('PUT', `/api/v1/organizations/${oid}/sso`, {
        token: provider.adminToken,
        body: {
          enabled: true,
          kind: 'oidc',
          jit: false,
          oidc: { authority: 'https://idp.example.test', clientId: 'portico', clientSecret: 'test-client-secret' },
        },
      }),
      200,
      'put SSO config',
    );

  describe('claiming', () => {
    it('answers 201 with the TXT record to publish, stores the domain lower-case without its trailing dot, and records domain.added', async () => {
      const label = freshDomain('Mixed');
      const res = await add(`${label.toUpperCase()}.`);
      const body = must(res, 201, 'claim');
      const domain = label.toLowerCase();
      expect(body).toMatchObject({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        domain,
        txtName: `_portico-verification.${domain}`,
        txtRecord: expect.stringMatching(/^portico-verification=[A-Za-z0-9_-]{32,}$/),
        verified: false,
        verifiedAt: null,
      });
      expect((await storedRow(body.id))?.domain).toBe(domain);
      expect(await list()).toEqual([expect.objectContaining({ id: body.id, domain, txtRecord: body.txtRecord, verified: false })]);
      expect(await events('domain.added')).toBe(1);
      // Each claim gets its own random value: knowing one organization's record proves nothing about another's.
      const other = await claim();
      expect(other.txtRecord).not.toBe(body.txtRecord);
    });

    it('accepts a punycode name and a name of 253 characters', async () => {
      must(await add(`xn--bcher-kva.${freshDomain()}`), 201, 'punycode');
      const longest = `${['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63)].join('.')}.${randomBytes(28).toString('hex')}.test`;
      expect(longest).toHaveLength(253);
      expect(must(await add(longest), 201, 'longest name').domain).toBe(longest);
    });

    it('accepts a name of 253 characters written absolute, with its trailing dot (254 characters in all)', async () => {
      const longest = `${['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63)].join('.')}.${randomBytes(28).toString('hex')}.test`;
      expect(longest).toHaveLength(253);
      const body = must(await add(`${longest}.`), 201, 'longest name, absolute');
      expect(body.domain).toBe(longest);
    });

    it.each([
      ['an empty string', ''],
      ['a single label', 'localhost'],
      ['a space', 'exa mple.test'],
      ['a leading hyphen', '-corp.example.test'],
      ['a trailing hyphen', 'corp-.example.test'],
      ['an empty label', 'corp..example.test'],
      ['a wildcard', '*.example.test'],
      ['a URL', 'https://corp.example.test'],
      ['an email address', 'someone@corp.example.test'],
      ['a numeric top-level label', 'corp.example.123'],
      ['a label of 64 characters', `${'a'.repeat(64)}.example.test`],
      ['a name of 254 characters', `${['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(57)].join('.')}.test`],
      ['a Unicode name not in punycode', 'bücher.example.test'],
      ['a number', 42],
      ['null', null],
    ])('refuses %s with 400 naming body.domain, and stores nothing', async (_name, domain) => {
      await touch(org.id);
      const before = await tableCounts(t);
      const res = await add(domain);
      expectProblem(res, 400);
      expect(JSON.stringify(res.body.errors)).toContain('body.domain');
      expect(await tableCounts(t)).toEqual(before);
    });

    it('refuses an unknown field with 400 and stores nothing', async () => {
      await touch(org.id);
      const before = await tableCounts(t);
      const res = await t.request('POST', base, { token: provider.adminToken, body: { domain: freshDomain(), verified: true } });
      expectProblem(res, 400);
      expect(await tableCounts(t)).toEqual(before);
    });

    it('refuses the same domain twice in one organization (409), however it is written, and changes nothing', async () => {
      const first = await claim();
      await touch(org.id);
      const before = await tableCounts(t);
      expectProblem(await add(first.domain), 409, 'conflict');
      expectProblem(await add(`${first.domain.toUpperCase()}.`), 409, 'conflict');
      expect(await tableCounts(t)).toEqual(before);
      expect(await list()).toHaveLength(1);
    });

    it('refuses a Teams organization, a member without manageSso and another organization’s admin, and changes nothing', async () => {
      const mine = await claim();
      const teams = await createClient(t, provider, { plan: 'teams' });
      const userManager = await confirmedMember(t, org.id, provider.adminToken, { role: 'custom', permissions: { manageUsers: true, managePolicies: true } });
      const plainUser = await confirmedMember(t, org.id, provider.adminToken, { role: 'user' });
      const other = await enterpriseClient();
      const stranger = await confirmedMember(t, other.id, provider.adminToken, { role: 'admin' });
      await touch(org.id, teams.id, other.id);
      const before = await tableCounts(t);
      const beforeEvents = await domainEvents();
      publish(mine);

      const teamsBase = domainsOf(teams.id);
      for (const [method, path] of [
        ['POST', teamsBase],
        ['GET', teamsBase],
      ] as const) {
        const res = await t.request(method, path, { token: provider.adminToken, body: method === 'POST' ? { domain: freshDomain() } : undefined });
        expectProblem(res, 403, 'organization.plan_feature');
      }
      const requests = [
        ['POST', base, { domain: freshDomain() }],
        ['GET', base, undefined],
        ['POST', `${base}/${mine.id}/verify`, undefined],
        ['DELETE', `${base}/${mine.id}`, undefined],
      ] as const;
      for (const who of [userManager, plainUser]) {
        for (const [method, path, body] of requests) {
          expectProblem(await t.request(method, path, { token: who.token, body }), 403, 'auth.permission_denied');
        }
      }
      for (const [method, path, body] of requests) {
        expectProblem(await t.request(method, path, { token: stranger.token, body }), 404, 'organization.not_found');
      }
      // Nor through its own organization: another organization's domain id names nothing there.
      const strangerBase = domainsOf(other.id);
      expectProblem(await t.request('POST', `${strangerBase}/${mine.id}/verify`, { token: stranger.token }), 404, 'domain.not_found');
      expectProblem(await t.request('DELETE', `${strangerBase}/${mine.id}`, { token: stranger.token }), 404, 'domain.not_found');

      expect(await tableCounts(t)).toEqual(before);
      expect(await domainEvents()).toEqual(beforeEvents);
      expect(await storedRow(mine.id)).toMatchObject({ verifiedAt: null, lastCheckedAt: null });
      expect(await singleOrgEnabled()).toBe(false);
    });

    it('an unknown or malformed domain id answers 404', async () => {
      for (const id of ['00000000-0000-4000-8000-000000000000', 'not-an-id']) {
        expectProblem(await verify(id), 404, 'domain.not_found');
        expectProblem(await t.request('DELETE', `${base}/${id}`, { token: provider.adminToken }), 404, 'domain.not_found');
      }
    });
  });

  describe('verifying through DNS', () => {
    it('a published record verifies the domain, turns singleOrg on and records domain.verified; verifying again changes nothing', async () => {
      const c = await claim();
      publish(c);
      expect(await singleOrgEnabled()).toBe(false);
      const queries = dns.queries;
      const body = must(await verify(c.id), 200, 'verify');
      expect(dns.queries).toBeGreaterThan(queries);
      expect(body).toMatchObject({ id: c.id, domain: c.domain, verified: true, verifiedAt: t.clock.now.toISOString(), lastCheckedAt: t.clock.now.toISOString() });
      expect(await singleOrgEnabled()).toBe(true);
      expect(await domainEvents()).toEqual({ added: 1, verified: 1, notVerified: 0, removed: 0, policyUpdated: 1 });
      expect(await list()).toEqual([expect.objectContaining({ id: c.id, verified: true })]);

      const firstVerifiedAt = body.verifiedAt;
      t.clock.advance(HOUR);
      const again = must(await verify(c.id), 200, 'verify again');
      expect(again).toMatchObject({ verified: true, verifiedAt: firstVerifiedAt, lastCheckedAt: t.clock.now.toISOString() });
      expect(await domainEvents()).toEqual({ added: 1, verified: 1, notVerified: 0, removed: 0, policyUpdated: 1 });
    });

    it('a singleOrg policy already on stays on with no policy event', async () => {
      must(await t.request('PUT', `/api/v1/organizations/${org.id}/policies/singleOrg`, { token: provider.adminToken, body: { enabled: true } }), 200, 'singleOrg on');
      const policyEvents = await events('policy.updated');
      await verified();
      expect(await singleOrgEnabled()).toBe(true);
      expect(await events('policy.updated')).toBe(policyEvents);
    });

    it.each([
      ['no record at all (NXDOMAIN)', (_c: Claim) => {}],
      ['the name exists without TXT records', (c: Claim) => dns.setTxt(c.txtName, [])],
      ['only other TXT records', (c: Claim) => dns.setTxt(c.txtName, ['v=spf1 -all', 'portico-verification=someone-elses-value'])],
      ['the value with a character missing', (c: Claim) => dns.setTxt(c.txtName, [c.txtRecord.slice(0, -1)])],
      ['the value with something appended', (c: Claim) => dns.setTxt(c.txtName, [`${c.txtRecord}x`])],
      ['the right value at the bare domain instead of the verification name', (c: Claim) => dns.setTxt(c.domain, [c.txtRecord])],
      ['the right value split across two records', (c: Claim) => dns.setTxt(c.txtName, [c.txtRecord.slice(0, 20), c.txtRecord.slice(20)])],
    ])('%s: answers verified:false, records domain.notVerified and leaves singleOrg off', async (_name, arrange) => {
      const c = await claim();
      arrange(c);
      const body = must(await verify(c.id), 200, 'verify');
      expect(body).toMatchObject({ id: c.id, verified: false, verifiedAt: null, lastCheckedAt: t.clock.now.toISOString() });
      expect(await domainEvents()).toEqual({ added: 1, verified: 0, notVerified: 1, removed: 0, policyUpdated: 0 });
      expect(await singleOrgEnabled()).toBe(false);
      expect((await storedRow(c.id))?.verifiedAt).toBeNull();
    });

    it('a value split into two character-strings of one record verifies, among other records', async () => {
      const c = await claim();
      dns.setTxt(c.txtName, [['v=spf1', ' -all'], [c.txtRecord.slice(0, 20), c.txtRecord.slice(20)]]);
      expect(must(await verify(c.id), 200, 'verify')).toMatchObject({ verified: true });
      expect(await singleOrgEnabled()).toBe(true);
    });

    it('the record published later verifies on the next attempt', async () => {
      const c = await claim();
      expect(must(await verify(c.id), 200, 'too early').verified).toBe(false);
      publish(c);
      expect(must(await verify(c.id), 200, 'published').verified).toBe(true);
      expect(await domainEvents()).toMatchObject({ verified: 1, notVerified: 1 });
    });

    it.each(['servfail', 'timeout'] as const)(
      'a resolver answering %s leaves a new domain unverified and keeps a verified one verified',
      { timeout: SILENT_SERVER_MS },
      async (mode) => {
        const fresh = await claim();
        publish(fresh);
        const done = await verified();
        dns.fail(mode);
        t.clock.advance(HOUR);
        expect(must(await verify(fresh.id), 200, 'verify fresh')).toMatchObject({ verified: false, verifiedAt: null });
        expect(must(await verify(done.id), 200, 'verify verified')).toMatchObject({ verified: true, verifiedAt: done.verifiedAt });
        expect(await events('domain.verified')).toBe(1);
        expect(await singleOrgEnabled()).toBe(true);
        dns.fail(null);
        expect(must(await verify(fresh.id), 200, 'verify after recovery').verified).toBe(true);
      },
    );
  });

  describe('a domain verified by another organization', () => {
    it('another organization may claim it first, but once one verifies, the other’s verify is refused 409 even with its own record published', async () => {
      const domain = freshDomain();
      const other = await enterpriseClient();
      const mine = await claim(domain);
      const theirs = await claim(domain, other.id);
      expect(theirs.txtName).toBe(mine.txtName);
      expect(theirs.txtRecord).not.toBe(mine.txtRecord);
      dns.setTxt(mine.txtName, [mine.txtRecord, theirs.txtRecord]);
      expect(must(await verify(mine.id), 200, 'first verify').verified).toBe(true);

      t.clock.advance(HOUR);
      await touch(org.id, other.id);
      const before = await tableCounts(t);
      const theirEvents = await domainEvents(other.id);
      expectProblem(await verify(theirs.id, { oid: other.id }), 409, 'conflict');
      expect(await tableCounts(t)).toEqual(before);
      expect(await domainEvents(other.id)).toEqual(theirEvents);
      expect(await storedRow(theirs.id)).toMatchObject({ verifiedAt: null, lastCheckedAt: null });
      expect(await singleOrgEnabled(other.id)).toBe(false);
      expect((await storedRow(mine.id))?.verifiedAt).not.toBeNull();

      // Once the first organization releases it, the other may verify its claim.
      expect((await t.request('DELETE', `${base}/${mine.id}`, { token: provider.adminToken })).status).toBe(204);
      expect(must(await verify(theirs.id, { oid: other.id }), 200, 'verify after release').verified).toBe(true);
    });

    it('claiming a domain another organization verified is refused 409, however it is written, and stores nothing', async () => {
      const done = await verified();
      const other = await enterpriseClient();
      await touch(other.id);
      const before = await tableCounts(t);
      expectProblem(await add(done.domain, { oid: other.id }), 409, 'conflict');
      expectProblem(await add(`${done.domain.toUpperCase()}.`, { oid: other.id }), 409, 'conflict');
      expect(await tableCounts(t)).toEqual(before);
      expect(await list(other.id)).toEqual([]);
    });

    it('two organizations verifying the same domain at once: exactly one wins', async () => {
      const domain = freshDomain();
      const other = await enterpriseClient();
      const mine = await claim(domain);
      const theirs = await claim(domain, other.id);
      dns.setTxt(mine.txtName, [mine.txtRecord, theirs.txtRecord]);
      const results = await Promise.all([verify(mine.id), verify(theirs.id, { oid: other.id })]);
      expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
      const rows = await t.testDb.database.db.select().from(schema.claimedDomains).where(eq(schema.claimedDomains.domain, domain));
      expect(rows.filter((r) => r.verifiedAt !== null)).toHaveLength(1);
      const winner = results[0]!.status === 200 ? org.id : other.id;
      expect(rows.find((r) => r.verifiedAt !== null)?.organizationId).toBe(winner);
    });
  });

  describe('removing', () => {
    it('answers 204, records domain.removed, and the domain then answers 404 and no longer routes sign-in', async () => {
      await enableSso();
      const done = await verified();
      expect((await ssoLogin(`someone@${done.domain}`)).status).toBe(302);
      const res = await t.request('DELETE', `${base}/${done.id}`, { token: provider.adminToken });
      expect(res.status).toBe(204);
      expect(await storedRow(done.id)).toBeUndefined();
      expect(await list()).toEqual([]);
      expect(await events('domain.removed')).toBe(1);
      await touch(org.id);
      const before = await tableCounts(t);
      expectProblem(await verify(done.id), 404, 'domain.not_found');
      expectProblem(await t.request('DELETE', `${base}/${done.id}`, { token: provider.adminToken }), 404, 'domain.not_found');
      expect(await tableCounts(t)).toEqual(before);
      expect((await ssoLogin(`someone@${done.domain}`)).status).toBe(404);
    });
  });

  describe('scheduled re-check (engine.recheckDomains)', () => {
    it('un-verifies a domain whose record is gone once its last check is old enough, as the domainVerification system', async () => {
      await enableSso();
      const done = await verified();
      dns.remove(done.txtName);

      // Checked just now: not due yet.
      t.clock.advance(HOUR);
      await t.engine.recheckDomains(DAY);
      expect((await storedRow(done.id))?.verifiedAt).not.toBeNull();
      expect((await ssoLogin(`someone@${done.domain}`)).status).toBe(302);

      t.clock.advance(DAY);
      await t.engine.recheckDomains(DAY);
      const row = await storedRow(done.id);
      expect(row?.verifiedAt).toBeNull();
      expect(row?.lastCheckedAt?.toISOString()).toBe(t.clock.now.toISOString());
      expect(await events('domain.notVerified')).toBe(1);
      const [event] = await t.testDb.database.db
        .select()
        .from(schema.events)
        .where(and(eq(schema.events.type, 'domain.notVerified'), eq(schema.events.organizationId, org.id)))
        .orderBy(schema.events.seq);
      expect(event).toMatchObject({ organizationId: org.id, actorSystem: 'domainVerification', actorUserId: null });
      expect((await ssoLogin(`someone@${done.domain}`)).status).toBe(404);
      // Another organization may now claim and verify it.
      const other = await enterpriseClient();
      expect(must(await add(done.domain, { oid: other.id }), 201, 'claim released domain').domain).toBe(done.domain);
    });

    it('keeps a domain verified while the resolver fails, and un-verifies it once DNS answers that the record is gone', async () => {
      const done = await verified();
      dns.fail('servfail');
      t.clock.advance(2 * DAY);
      await t.engine.recheckDomains(DAY);
      expect((await storedRow(done.id))?.verifiedAt?.toISOString()).toBe(done.verifiedAt);
      expect(await singleOrgEnabled()).toBe(true);

      dns.fail(null);
      dns.remove(done.txtName);
      t.clock.advance(2 * DAY);
      await t.engine.recheckDomains(DAY);
      expect((await storedRow(done.id))?.verifiedAt).toBeNull();
    });

    it('leaves a domain that was never verified alone', async () => {
      const pending = await claim();
      expect(must(await verify(pending.id), 200, 'verify without a record').verified).toBe(false);
      const before = await domainEvents();
      const checkedAt = (await storedRow(pending.id))?.lastCheckedAt;
      publish(pending);
      t.clock.advance(2 * DAY);
      await t.engine.recheckDomains(DAY);
      expect(await storedRow(pending.id)).toMatchObject({ verifiedAt: null, lastCheckedAt: checkedAt });
      expect(await domainEvents()).toEqual(before);
    });

    it('keeps a domain whose record is still published verified, with no new event', async () => {
      const done = await verified();
      const before = await domainEvents();
      t.clock.advance(2 * DAY);
      await t.engine.recheckDomains(DAY);
      const row = await storedRow(done.id);
      expect(row?.verifiedAt?.toISOString()).toBe(done.verifiedAt);
      expect(row?.lastCheckedAt?.toISOString()).toBe(t.clock.now.toISOString());
      expect(await domainEvents()).toEqual(before);
    });
  });

  describe('/sso/login routes by a verified domain', () => {
    it('sends someone@<verified domain> to the organization’s SSO login with a login hint', async () => {
      await enableSso();
      const done = await verified();
      const email = `someone@${done.domain}`;
      const res = await ssoLogin(email);
      expect(res.status).toBe(302);
      const location = new URL(res.headers.get('location')!, t.url);
      expect(location.pathname).toBe(`/sso/${org.identifier}/login`);
      expect(location.searchParams.get('login_hint')).toBe(email);
      // Domains are case-insensitive (RFC 4343).
      const shouted = await ssoLogin(`Someone@${done.domain.toUpperCase()}`);
      expect(shouted.status).toBe(302);
      expect(new URL(shouted.headers.get('location')!, t.url).pathname).toBe(`/sso/${org.identifier}/login`);
    });

    it('answers the 404 login page for a claimed but unverified domain, a verified domain without SSO, and an unknown one', async () => {
      await enableSso();
      const unverified = await claim();
      const withoutSso = await verified(freshDomain(), (await enterpriseClient()).id);
      for (const domain of [unverified.domain, withoutSso.domain, freshDomain('nobody')]) {
        const res = await ssoLogin(`someone@${domain}`);
        expect(res.status).toBe(404);
        expect(res.headers.get('location')).toBeNull();
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        expect(await res.text()).toContain('No organization signs in with SSO for this email domain');
      }
    });
  });
});
