/**
 * Directory sync end to end: the real app (startTestApp) with the real connectors
 * (connectors/index.ts), the real presets (src/sync/presets.ts) and the real reconcile
 * (`reconcileThrough(engine)`, src/sync/runner.ts), wired as src/main.ts wires them, against a
 * throwaway OpenLDAP slapd (test/support/slapd.ts), driven through /api/v1 only. One slapd for the
 * file; each driver reads its own subtree (`ou=<driver>`), so one driver's edits never reach the other.
 */
import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDirectorySource } from '../../connectors/index.js';
import { resolveConnectionSettings } from '../../src/sync/presets.js';
import { reconcileThrough } from '../../src/sync/runner.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver, type Driver } from '../support/db.js';
import { countMails, createClient, expectProblem, invitedMember, must, setupProvider, tableCounts, type SeededProvider } from '../support/http-seed.js';
import { slapdAvailable, startCuttingProxy, startSlapd, type Slapd } from '../support/slapd.js';

const SUFFIX = 'dc=example,dc=test';
const DRIVERS: Driver[] = ['pglite', 'postgres'];
const FINISHED = ['succeeded', 'failed', 'guarded'];
const SEAT_USERS = 5;
const SEATS = 2;

const ownerEmail = (d: Driver) => `owner-${d}@example.test`;
const mailOf = (d: Driver, uid: string) => `${uid}@${d}.example.test`;

function person(dn: string, uid: string, extra: string[] = []): string {
  return [`dn: ${dn}`, 'objectClass: inetOrgPerson', `uid: ${uid}`, `cn: Person ${uid}`, `sn: ${uid}`, ...extra, ''].join('\n');
}

/** Each driver's subtree: people (with a staff OU to move into), groups, and a small OU for the seat test. */
function subtree(d: Driver): string {
  const root = `ou=${d},${SUFFIX}`;
  const people = `ou=people,${root}`;
  const groups = `ou=groups,${root}`;
  const ou = (dn: string, name: string) => `dn: ${dn}\nobjectClass: organizationalUnit\nou: ${name}\n`;
  const out = [ou(root, d), ou(people, 'people'), ou(`ou=staff,${people}`, 'staff'), ou(groups, 'groups'), ou(`ou=seats,${root}`, 'seats')];
  for (let i = 1; i <= 8; i++) {
    const uid = `u0${i}`;
    // u03's address is written in mixed case: it is invited lower-cased.
    out.push(person(`uid=${uid},${people}`, uid, [`mail: ${i === 3 ? 'U03@' + d.toUpperCase() + '.Example.TEST' : mailOf(d, uid)}`]));
  }
  out.push(person(`uid=mover,${people}`, 'mover', [`mail: ${mailOf(d, 'mover')}`]));
  out.push(person(`uid=nomail,${people}`, 'nomail'));
  // The same address in two cases: neither is applied.
  out.push(person(`uid=dupa,${people}`, 'dupa', [`mail: Shared@${d}.Example.TEST`]));
  out.push(person(`uid=dupb,${people}`, 'dupb', [`mail: shared@${d}.example.test`]));
  // A directory user with the organization owner's address.
  out.push(person(`uid=twin,${people}`, 'twin', [`mail: ${ownerEmail(d).toUpperCase()}`]));
  // A cyclic pair (Engineering ⇄ Platform), a group nesting it, and a posixGroup naming uids.
  out.push(`dn: cn=Engineering,${groups}\nobjectClass: groupOfNames\ncn: Engineering\nmember: uid=u01,${people}\nmember: cn=Platform,${groups}\n`);
  out.push(`dn: cn=Platform,${groups}\nobjectClass: groupOfNames\ncn: Platform\nmember: UID=U02, OU=People,OU=${d},DC=Example,DC=Test\nmember: cn=Engineering,${groups}\n`);
  out.push(`dn: cn=Everyone,${groups}\nobjectClass: groupOfNames\ncn: Everyone\nmember: cn=Engineering,${groups}\nmember: uid=u03,${people}\nmember: uid=twin,${people}\n`);
  out.push(`dn: cn=ops,${groups}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 2000\nmemberUid: u04\nmemberUid: u05\n`);
  for (let i = 1; i <= SEAT_USERS; i++) out.push(person(`uid=s${i},ou=seats,${root}`, `s${i}`, [`mail: ${mailOf(d, `s${i}`)}`]));
  return out.join('\n');
}

// CI installs slapd (.ci/run): there a missing server is a failure, not a skip.
if (process.env.CI === 'true' && !slapdAvailable) throw new Error('slapd is not installed: apt-get install -y slapd ldap-utils');

let slapd: Slapd;

/**
 * slapd's refint overlay rewrites the member values naming a renamed entry after modifyDN has
 * answered, in the background: waits until no entry names `oldDn` any more.
 */
async function refintDone(oldDn: string): Promise<void> {
  const stale = async () => {
    let count = 0;
    await asDirectoryAdmin(async (c) => {
      count = (await c.search(SUFFIX, { filter: `(member=${oldDn})`, attributes: ['1.1'] })).searchEntries.length;
    });
    return count;
  };
  await expect.poll(stale, { timeout: 10_000, interval: 100 }).toBe(0);
}

async function asDirectoryAdmin(work: (client: Client) => Promise<unknown>): Promise<void> {
  const client = new Client({ url: slapd.url });
  await client.bind(slapd.adminDn, slapd.adminPassword);
  try {
    await work(client);
  } finally {
    await client.unbind();
  }
}
const setAttribute = (dn: string, type: string, values: string[]) =>
  asDirectoryAdmin((c) => c.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type, values }) })));

describe.skipIf(!slapdAvailable)('directory sync end to end against OpenLDAP (slapd; install slapd ldap-utils)', () => {
  beforeAll(async () => {
    slapd = await startSlapd({ suffix: SUFFIX, ldif: DRIVERS.map(subtree).join('\n') });
  });
  afterAll(async () => {
    await slapd?.stop();
  });

  describeEachDriver('directory sync through the API', (driver) => {
    const root = `ou=${driver},${SUFFIX}`;
    const people = `ou=people,${root}`;
    let t: TestApp;
    let provider: SeededProvider;
    let oid: string;
    let base: string;
    let owner: any;

    const config = (overrides: Record<string, unknown> = {}) => ({
      kind: 'ldap',
      preset: 'openldap',
      url: slapd.url,
      bindDn: slapd.adminDn,
      bindPassword: slapd.adminPassword,
      users: { baseDn: people, disabledFilter: '(employeeType=disabled)' },
      groups: { baseDn: `ou=groups,${root}` },
      timeLimitSeconds: 30,
      ...overrides,
    });
    const put = async (body: unknown, path = base) => must(await t.request('PUT', path, { token: provider.adminToken, body }), 200, 'put directory');

    /** Starts a sync through the API and polls its run until it finished. */
    async function sync(options: { dryRun?: boolean; path?: string } = {}): Promise<any> {
      const path = options.path ?? base;
      const started = must(
        await t.request('POST', `${path}/sync`, { token: provider.adminToken, body: { dryRun: options.dryRun ?? false } }),
        202,
        'start sync',
      );
      const deadline = Date.now() + 20_000;
      for (;;) {
        const run = must(await t.request('GET', `${path}/runs/${started.id}`, { token: SYSTEM_TOKEN }), 200, 'read run');
        if (FINISHED.includes(run.status)) return run;
        if (Date.now() > deadline) throw new Error(`run ${started.id} still ${run.status} after 20 s`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }

    /** Every member of an organization (read by the operator, who records no event). */
    const members = async (organizationId = oid): Promise<any[]> =>
      must(await t.request('GET', `/api/v1/organizations/${organizationId}/members`, { token: SYSTEM_TOKEN }), 200, 'members').data;
    const memberByEmail = async (email: string) => (await members()).find((m) => m.email === email);
    const groups = async (): Promise<Record<string, any>> => {
      const list = must(await t.request('GET', `/api/v1/organizations/${oid}/groups`, { token: SYSTEM_TOKEN }), 200, 'groups').data as any[];
      const out: Record<string, any> = {};
      for (const g of list) out[g.name] = must(await t.request('GET', `/api/v1/organizations/${oid}/groups/${g.id}`, { token: SYSTEM_TOKEN }), 200, 'group');
      return out;
    };
    /** Every event of the organization, through the API (all pages). */
    async function events(organizationId = oid): Promise<any[]> {
      const all: any[] = [];
      let cursor: string | undefined;
      do {
        const query = cursor ? `?continuationToken=${encodeURIComponent(cursor)}` : '';
        const page = must(await t.request('GET', `/api/v1/organizations/${organizationId}/events${query}`, { token: SYSTEM_TOKEN }), 200, 'events');
        all.push(...page.data);
        cursor = page.continuationToken;
      } while (cursor);
      return all;
    }
    /** Row counts of every table, the members and groups as the API renders them, and the events. */
    const digest = async () => ({ tables: await tableCounts(t), members: await members(), groups: await groups(), events: await events() });
    /** The owner is never revoked, removed, linked or changed. */
    const expectOwnerUntouched = async () => expect((await members()).find((m) => m.id === owner.id)).toEqual(owner);
    const idsOf = (all: any[], emails: string[]) => emails.map((e) => all.find((m) => m.email === e)?.id).sort();

    beforeAll(async () => {
      t = await startTestApp(driver, {
        directorySource: createDirectorySource,
        resolveSettings: resolveConnectionSettings,
        reconcileWith: reconcileThrough,
      });
      provider = await setupProvider(t);
      oid = (await createClient(t, provider, { plan: 'enterprise', seats: 20 })).id;
      base = `/api/v1/organizations/${oid}/directory`;
      const { memberId } = await invitedMember(t, oid, provider.adminToken, { role: 'owner', email: ownerEmail(driver) });
      owner = (await members()).find((m) => m.id === memberId);
      expect(owner).toMatchObject({ role: 'owner', externalId: null });
      await put(config());
    });
    afterAll(async () => {
      await t?.close();
    });

    it('the test endpoint reports what a sync would read, and changes nothing', async () => {
      const before = await digest();
      const report = must(await t.request('POST', `${base}/test`, { token: provider.adminToken }), 200, 'test');
      expect(report).toMatchObject({ ok: true, users: 13, groups: 4, disabled: 0 });
      const problems = (report.problems as { dn?: string; problem: string }[]).map((p) => `${p.dn?.split(',')[0]}: ${p.problem}`);
      expect(problems).toEqual(
        expect.arrayContaining(['uid=nomail: no email address', expect.stringMatching(/^uid=dup[ab]: email shared@/)]),
      );
      expect(await digest()).toEqual(before);
    });

    it('a dry run lists the invitations and groups it would create, and changes nothing', async () => {
      const before = await digest();
      const run = await sync({ dryRun: true });
      expect(run).toMatchObject({ status: 'succeeded', dryRun: true, counts: { read: 13, invited: 9, groupsCreated: 4, removed: 0 } });
      const invites = (run.changes as any[]).filter((c) => c.kind === 'invite').map((c) => c.email).sort();
      expect(invites).toEqual(['mover', 'u01', 'u02', 'u03', 'u04', 'u05', 'u06', 'u07', 'u08'].map((u) => mailOf(driver, u)).sort());
      expect((run.changes as any[]).filter((c) => c.kind === 'createGroup').map((c) => c.name).sort()).toEqual(['Engineering', 'Everyone', 'Platform', 'ops']);
      expect(run.changes).toHaveLength(13);
      expect(await digest()).toEqual(before);
    });

    it('the first sync invites each user with their mail, creates flattened groups, reports problems, all as directorySync', async () => {
      const before = await events();
      const run = await sync();
      expect(run).toMatchObject({
        status: 'succeeded',
        dryRun: false,
        counts: { read: 13, invited: 9, linked: 0, groupsCreated: 4, removed: 0, revoked: 0 },
      });
      const problems = (run.problems as any[]).map((p) => `${p.code}:${p.dn?.split(',')[0] ?? p.email}`).sort();
      expect(problems).toEqual(['duplicateEmail:uid=dupa', 'duplicateEmail:uid=dupb', 'missingEmail:uid=nomail', 'owner:uid=twin']);
      expect(run.counts.problems).toBe(4);

      const all = await members();
      const invitedEmails = ['mover', 'u01', 'u02', 'u03', 'u04', 'u05', 'u06', 'u07', 'u08'].map((u) => mailOf(driver, u));
      expect(all.filter((m) => m.role !== 'owner').map((m) => m.email).sort()).toEqual(invitedEmails.sort());
      for (const m of all.filter((x) => x.role !== 'owner')) {
        expect(m).toMatchObject({ status: 'invited', role: 'user', externalId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      }
      for (const email of invitedEmails) expect(await countMails(t, email)).toBe(1);
      for (const email of [`shared@${driver}.example.test`]) expect(await countMails(t, email)).toBe(0);
      // The invitation mailed to u03 (read as mixed case) is a working invitation.
      const accepted = must(
        await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(mailOf(driver, 'u03')) } }),
        200,
        'accept',
      );
      expect((await memberByEmail(mailOf(driver, 'u03'))).status).toBe('accepted');

      const g = await groups();
      const ids = (...uids: string[]) => idsOf(all, uids.map((u) => mailOf(driver, u)));
      expect(Object.keys(g).sort()).toEqual(['Engineering', 'Everyone', 'Platform', 'ops']);
      expect(g.Engineering.members).toEqual(ids('u01', 'u02'));
      expect(g.Platform.members).toEqual(ids('u01', 'u02'));
      expect(g.Everyone.members).toEqual(ids('u01', 'u02', 'u03'));
      expect(g.Everyone.members).not.toContain(owner.id);
      expect(g.ops.members).toEqual(ids('u04', 'u05'));
      for (const group of Object.values(g)) expect(group.externalId).toMatch(/^[0-9a-f-]{36}$/);

      const seen = new Set(before.map((e) => e.id));
      const fresh = (await events()).filter((e) => !seen.has(e.id));
      // Everything but the acceptance (the invitee's own act) was done by the sync.
      const notByInvitee = fresh.filter((e) => e.actor.userId !== accepted.user.id);
      expect(notByInvitee.length).toBeGreaterThanOrEqual(13);
      for (const e of notByInvitee) expect(e.actor).toEqual({ system: 'directorySync' });
      expect(fresh.filter((e) => e.type === 'member.invited')).toHaveLength(9);
      expect(fresh.filter((e) => e.type === 'group.created')).toHaveLength(4);
      await expectOwnerUntouched();
    });

    it('a resync of an unchanged directory changes nothing and records no event', async () => {
      const before = await digest();
      const run = await sync();
      expect(run).toMatchObject({ status: 'succeeded', counts: { invited: 0, updated: 0, revoked: 0, restored: 0, removed: 0, groupsCreated: 0, groupsUpdated: 0 } });
      expect(await digest()).toEqual(before);
    });

    it('a renamed user and a user moved to another OU stay the same member; a renamed group keeps its id and members', async () => {
      const before = await members();
      const groupsBefore = await groups();
      await asDirectoryAdmin((c) => c.modifyDN(`uid=u06,${people}`, `uid=u06-renamed,${people}`));
      await asDirectoryAdmin((c) => c.modifyDN(`uid=mover,${people}`, `uid=mover,ou=staff,${people}`));
      const eventsBefore = await events();
      const run = await sync();
      expect(run).toMatchObject({ status: 'succeeded', counts: { read: 13, invited: 0, removed: 0, revoked: 0, updated: 0, groupsUpdated: 0 } });
      expect(await members()).toEqual(before);
      expect(await events()).toEqual(eventsBefore);

      await asDirectoryAdmin((c) => c.modifyDN(`cn=Platform,ou=groups,${root}`, `cn=Platform Team,ou=groups,${root}`));
      await refintDone(`cn=Platform,ou=groups,${root}`);
      const renamed = await sync();
      expect(renamed).toMatchObject({ status: 'succeeded', counts: { groupsUpdated: 1, groupsCreated: 0 } });
      const after = await groups();
      expect(Object.keys(after).sort()).toEqual(['Engineering', 'Everyone', 'Platform Team', 'ops']);
      expect(after['Platform Team']).toMatchObject({ id: groupsBefore.Platform.id, externalId: groupsBefore.Platform.externalId, members: groupsBefore.Platform.members });
      expect(after.Engineering.members).toEqual(groupsBefore.Engineering.members);
      expect(await members()).toEqual(before);
      await expectOwnerUntouched();
    });

    it('an email changed under the same entryUUID updates that member', async () => {
      const before = await memberByEmail(mailOf(driver, 'u07'));
      const count = (await members()).length;
      await setAttribute(`uid=u07,${people}`, 'mail', [mailOf(driver, 'u07-new')]);
      const run = await sync();
      expect(run).toMatchObject({ status: 'succeeded', counts: { updated: 1, invited: 0, removed: 0 } });
      const after = (await members()).find((m) => m.id === before.id);
      expect(after).toMatchObject({ email: mailOf(driver, 'u07-new'), externalId: before.externalId, status: before.status });
      expect(await members()).toHaveLength(count);
      const updated = (await events()).filter((e) => e.type === 'member.updated' && e.memberId === before.id);
      expect(updated).toEqual([expect.objectContaining({ actor: { system: 'directorySync' } })]);

      // A member whose directory address becomes the owner's (which the twin entry also has) keeps
      // its own, and the owner is untouched.
      const u04 = await memberByEmail(mailOf(driver, 'u04'));
      await setAttribute(`uid=u04,${people}`, 'mail', [ownerEmail(driver)]);
      const clash = await sync();
      expect(clash).toMatchObject({ status: 'succeeded', counts: { updated: 0 } });
      expect((clash.problems as any[]).filter((p) => p.externalId === u04.externalId).map((p) => p.code)).toEqual(['duplicateEmail']);
      expect((await members()).find((m) => m.id === u04.id)).toEqual(u04);
      await expectOwnerUntouched();
      await setAttribute(`uid=u04,${people}`, 'mail', [mailOf(driver, 'u04')]);
    });

    it('a user matching the disabled filter is revoked, and restored once re-enabled', async () => {
      const u08 = await memberByEmail(mailOf(driver, 'u08'));
      await setAttribute(`uid=u08,${people}`, 'employeeType', ['disabled']);
      const revoked = await sync();
      expect(revoked).toMatchObject({ status: 'succeeded', counts: { revoked: 1, removed: 0 } });
      expect((await members()).find((m) => m.id === u08.id)).toMatchObject({ status: 'revoked', externalId: u08.externalId });

      await setAttribute(`uid=u08,${people}`, 'employeeType', []);
      const restored = await sync();
      expect(restored).toMatchObject({ status: 'succeeded', counts: { restored: 1, revoked: 0 } });
      expect((await members()).find((m) => m.id === u08.id)).toMatchObject({ status: u08.status, externalId: u08.externalId });
      await expectOwnerUntouched();
    });

    it('a deleted user is kept without removeMissing, held by the shrink guard, and removed with removeMissing', async () => {
      const u05 = await memberByEmail(mailOf(driver, 'u05'));
      await asDirectoryAdmin((c) => c.del(`uid=u05,${people}`));

      const kept = await sync();
      expect(kept).toMatchObject({ status: 'succeeded', counts: { read: 12, removed: 0 } });
      expect((await members()).find((m) => m.id === u05.id)).toMatchObject({ status: u05.status });

      // 1 of 9 linked members missing is 11%: over the default 10% threshold.
      await put(config({ options: { removeMissing: true } }));
      const guarded = await sync();
      expect(guarded).toMatchObject({ status: 'guarded', counts: { removed: 0 } });
      expect(guarded.message).toContain('threshold');
      expect((await members()).find((m) => m.id === u05.id)).toBeDefined();

      await put(config({ options: { removeMissing: true, shrinkGuardPercent: 20 } }));
      const removed = await sync();
      expect(removed).toMatchObject({ status: 'succeeded', counts: { removed: 1, invited: 0, revoked: 0 } });
      expect((await members()).find((m) => m.id === u05.id)).toBeUndefined();
      expect((await groups()).ops.members).toEqual(idsOf(await members(), [mailOf(driver, 'u04')]));
      await expectOwnerUntouched();
    });

    it('a users filter that now matches nobody ends guarded and removes nobody', async () => {
      const before = await digest();
      await put(config({ users: { baseDn: people, filter: '(uid=nobody-matches-this)' }, options: { removeMissing: true, shrinkGuardPercent: 20 } }));
      const afterPut = await digest();
      const run = await sync();
      expect(run).toMatchObject({ status: 'guarded', counts: { read: 0, removed: 0, revoked: 0 } });
      expect(run.message).toContain('no users');
      const after = await digest();
      expect(after.members).toEqual(before.members);
      expect(after).toEqual(afterPut);
      await put(config({ options: { removeMissing: true, shrinkGuardPercent: 20 } }));
    });

    it('a wrong bind password fails the run as bind and changes nothing; the test endpoint says so', async () => {
      await put(config({ bindPassword: 'not-the-password', options: { removeMissing: true, shrinkGuardPercent: 20 } }));
      const before = await digest();
      const report = must(await t.request('POST', `${base}/test`, { token: provider.adminToken }), 200, 'test');
      expect(report).toMatchObject({ ok: false, failure: 'bind' });
      expect(JSON.stringify(report)).not.toContain('not-the-password');
      const run = await sync();
      expect(run).toMatchObject({ status: 'failed', failure: 'bind', counts: { removed: 0, invited: 0 } });
      expect(await digest()).toEqual(before);
      await put(config({ options: { removeMissing: true, shrinkGuardPercent: 20 } }));
    });

    it('a connection cut in the middle of the read fails the run and removes nobody', async () => {
      const proxy = await startCuttingProxy({ targetPort: slapd.port, cutAfterBytes: 1_200 });
      try {
        await put(config({ url: proxy.url, pageSize: 2, options: { removeMissing: true, shrinkGuardPercent: 100 } }));
        const before = await digest();
        const run = await sync();
        expect(run).toMatchObject({ status: 'failed', failure: 'interrupted', counts: { removed: 0 } });
        expect(proxy.bytesFromServer()).toBeGreaterThan(1_200);
        expect(await digest()).toEqual(before);
      } finally {
        await proxy.close();
        await put(config({ options: { removeMissing: true, shrinkGuardPercent: 20 } }));
      }
      await expectOwnerUntouched();
    });

    it('more new users than seats: the run fails naming the shortage, each user left out is a problem, nobody beyond the seats is invited', async () => {
      const small = (await createClient(t, provider, { plan: 'enterprise', seats: SEATS })).id;
      const path = `/api/v1/organizations/${small}/directory`;
      await put(config({ users: { baseDn: `ou=seats,${root}` }, groups: undefined }), path);
      const run = await sync({ path });
      expect(run).toMatchObject({ status: 'failed', counts: { read: SEAT_USERS, invited: SEATS } });
      expect(run.message).toMatch(/seat/);
      const shortage = (run.problems as any[]).filter((p) => p.code === 'seatShortage');
      expect(shortage).toHaveLength(SEAT_USERS - SEATS);
      const invited = await members(small);
      expect(invited).toHaveLength(SEATS);
      expect(new Set([...invited.map((m) => m.email), ...shortage.map((p) => p.email)]).size).toBe(SEAT_USERS);
      for (const p of shortage) expect(await countMails(t, p.email)).toBe(0);
    });

    it("another organization's token answers 404 on every directory route and changes nothing", async () => {
      const other = await setupProvider(t);
      await createClient(t, other, { plan: 'enterprise' });
      const runs = must(await t.request('GET', `${base}/runs`, { token: provider.adminToken }), 200, 'runs').data as any[];
      const before = { ...(await digest()), runs, config: must(await t.request('GET', base, { token: provider.adminToken }), 200, 'config') };
      const token = other.adminToken;
      const attempts = [
        t.request('GET', base, { token }),
        t.request('PUT', base, { token, body: config() }),
        t.request('DELETE', base, { token }),
        t.request('POST', `${base}/test`, { token }),
        t.request('POST', `${base}/sync`, { token, body: { dryRun: false } }),
        t.request('GET', `${base}/runs`, { token }),
        t.request('GET', `${base}/runs/${runs[0].id}`, { token }),
      ];
      for (const res of await Promise.all(attempts)) expectProblem(res, 404);
      const after = {
        ...(await digest()),
        runs: must(await t.request('GET', `${base}/runs`, { token: provider.adminToken }), 200, 'runs').data,
        config: must(await t.request('GET', base, { token: provider.adminToken }), 200, 'config'),
      };
      expect(after).toEqual(before);
      await expectOwnerUntouched();
    });
  });
});
