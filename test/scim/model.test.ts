/**
 * The SCIM User model (issue 9): `userName` and the member's email are two things, `emails` are
 * filtered and projected as the resource shows them (RFC 7644 §3.4.2.2, §3.9–3.10), every member
 * renders whole however it was created, and a PatchOp or resource body without its schema URN
 * changes nothing.
 */
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  ENTERPRISE_USER,
  expectCreated,
  expectListResponse,
  expectScim,
  expectScimError,
  fixture,
  guid,
  memberRow,
  PATCH_OP,
  patchOp,
  restMember,
  snapshot,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

describeEachDriver('SCIM user model', (driver) => {
  const s = useScimApp(driver);

  const find = async (org: ScimOrg, filter: string): Promise<string[]> => {
    const res = await org.get(`/Users?filter=${encodeURIComponent(filter)}`);
    return expectScim(res, 200).Resources.map((u: { id: string }) => u.id);
  };

  async function createUpnUser(org: ScimOrg) {
    const tag = guid().slice(0, 8);
    const upn = `Megan.Bowen.${tag}@Contoso.onmicrosoft.example`;
    const mail = `MeganB.${tag}@Contoso.example`;
    const externalId = guid();
    const body = expectCreated(await org.post('/Users', fixture('entra', 'create-user-upn', { upn, mail, externalId })), org, 'User');
    return { id: body.id as string, upn, mail, externalId, body };
  }

  it('keeps an Entra UPN as userName and invites the work mailbox when the two differ', async () => {
    const org = await s.organization();
    const { id, upn, mail, externalId, body } = await createUpnUser(org);
    expect(body).toMatchObject({ userName: upn, emails: [{ primary: true, type: 'work', value: mail }], externalId });
    expect((await restMember(s.t, org, id)).body).toMatchObject({ email: mail.toLowerCase(), userName: upn, status: 'invited' });
    // The invitation goes to the mailbox, not to the UPN.
    expect(await s.t.mailedToken(mail.toLowerCase())).toEqual(expect.any(String));

    // Each attribute matches what the resource shows, in any case.
    expect(await find(org, `userName eq "${upn.toUpperCase()}"`)).toEqual([id]);
    expect(await find(org, `userName eq "${mail}"`)).toEqual([]);
    expect(await find(org, `emails[type eq "work"].value eq "${mail.toLowerCase()}"`)).toEqual([id]);
    expect(await find(org, `emails[type eq "work"].value eq "${upn}"`)).toEqual([]);
    expect(await find(org, `emails.value eq "${upn}"`)).toEqual([]);
  });

  it('moves the email with the work mailbox, and never with the userName alone', async () => {
    const org = await s.organization();
    const { id, upn, mail } = await createUpnUser(org);
    const newUpn = `renamed.${guid().slice(0, 8)}@contoso.onmicrosoft.example`;
    const renamed = expectScim(await org.patch(`/Users/${id}`, patchOp({ op: 'Replace', path: 'userName', value: newUpn })), 200);
    expect(renamed).toMatchObject({ userName: newUpn, emails: [{ value: mail }] });
    expect((await restMember(s.t, org, id)).body).toMatchObject({ email: mail.toLowerCase(), userName: newUpn });

    const newMail = uniqueEmail('megan.new');
    const moved = expectScim(await org.patch(`/Users/${id}`, patchOp({ op: 'Replace', path: 'emails[type eq "work"].value', value: newMail })), 200);
    expect(moved).toMatchObject({ userName: newUpn, emails: [{ value: newMail, type: 'work', primary: true }] });
    expect((await restMember(s.t, org, id)).body).toMatchObject({ email: newMail, userName: newUpn });
    expect(await find(org, `userName eq "${upn}"`)).toEqual([]);
  });

  it('takes a userName that is no address beside a work email, unique per organization in any case', async () => {
    const org = await s.organization();
    const userName = `jsmith-${guid().slice(0, 6)}`;
    const email = uniqueEmail('jo.smith');
    const body = expectCreated(
      await org.post('/Users', fixture('okta', 'create-user-login', { userName, email, externalId: guid(), password: 'Secret-1' })),
      org,
      'User',
    );
    expect(body).toMatchObject({ userName, emails: [{ primary: true, value: email, type: 'work' }], displayName: 'Jo Smith' });
    expect((await restMember(s.t, org, body.id)).body).toMatchObject({ email, userName });
    expect(await find(org, `userName eq "${userName.toUpperCase()}"`)).toEqual([body.id]);

    const before = await snapshot(s.t, org.oid);
    const clash = fixture('okta', 'create-user-login', { userName: userName.toUpperCase(), email: uniqueEmail(), externalId: guid(), password: 'x' });
    expectScimError(await org.post('/Users', clash), 409, 'uniqueness');
    // Nor may another member take, as its userName, an address that is already someone's userName.
    const other = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('other') }), org, 'User');
    const mid = await snapshot(s.t, org.oid);
    expectScimError(await org.patch(`/Users/${other.id}`, patchOp({ op: 'replace', path: 'userName', value: userName })), 409, 'uniqueness');
    expect(await snapshot(s.t, org.oid)).toEqual(mid);
    expect(mid.members).toHaveLength(before.members.length + 1);
  });

  it('refuses a user with no address at all with 400 invalidValue saying what to send, storing nothing', async () => {
    const org = await s.organization();
    const before = await snapshot(s.t, org.oid);
    const noAddress = { schemas: [CORE_USER], userName: `nomail-${guid().slice(0, 6)}`, name: { givenName: 'No', familyName: 'Mail' } };
    const refused = await org.post('/Users', noAddress);
    expectScimError(refused, 400, 'invalidValue');
    expect(refused.body.detail).toMatch(/emails/);
    expect(refused.body.detail).toMatch(/userName that is an email address/);
    const notAnAddress = await org.post('/Users', { ...noAddress, emails: [{ value: 'jsmith', type: 'work', primary: true }] });
    expectScimError(notAnAddress, 400, 'invalidValue');
    expect(await snapshot(s.t, org.oid)).toEqual(before);
  });

  it('invites the primary address, else the first work one, else the first', async () => {
    const org = await s.organization();
    const [a, b, c] = [uniqueEmail('a'), uniqueEmail('b'), uniqueEmail('c')];
    const cases: [unknown[], string][] = [
      [[{ value: a, type: 'home' }, { value: b, type: 'work' }, { value: c, type: 'other', primary: true }], c],
      [[{ value: a, type: 'home' }, { value: b, type: 'work' }], b],
      [[{ value: a, type: 'home' }, { value: b }], a],
    ];
    for (const [emails, expected] of cases) {
      const body = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: `u-${guid()}`, emails }), org, 'User');
      expect((await restMember(s.t, org, body.id)).body.email).toBe(expected);
      expect((await org.delete(`/Users/${body.id}`)).status).toBe(204);
    }
  });

  it('filters on emails by type and value on the same address, and on userName apart from email', async () => {
    const org = await s.organization();
    const work = uniqueEmail('erin.work');
    const home = uniqueEmail('erin.home');
    const erin = expectCreated(
      await org.post('/Users', {
        schemas: [CORE_USER],
        userName: `erin-${guid().slice(0, 6)}`,
        emails: [
          { value: work, type: 'work', primary: true },
          { value: home.toUpperCase(), type: 'home' },
        ],
      }),
      org,
      'User',
    ).id as string;
    s.t.clock.advance(60_000); // lists answer in creation order
    const plain = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('frank') }), org, 'User').id as string;
    const cases: [string, string[]][] = [
      [`emails[type eq "home"].value eq "${home}"`, [erin]],
      [`emails[type eq "work"].value eq "${home}"`, []],
      [`emails[type eq "home" and value eq "${work}"]`, []],
      [`emails.value eq "${home}"`, [erin]],
      [`emails eq "${work.toUpperCase()}"`, [erin]],
      ['emails.type eq "home"', [erin]],
      ['emails[type eq "work"]', [erin, plain]],
      ['not (emails[type eq "home"])', [plain]],
      ['emails[type eq "work" and primary eq true]', [erin, plain]],
      ['emails[type eq "home" and primary eq true]', []],
      [`emails[value ew "${home.split('@')[1]}" and not (type eq "work")]`, [erin]],
      [`userName eq "${work}"`, []],
    ];
    for (const [filter, expected] of cases) expect(await find(org, filter), filter).toEqual(expected);
    expectScimError(await org.get(`/Users?filter=${encodeURIComponent('emails[nickname eq "x"]')}`), 400, 'invalidFilter');
    expectScimError(await org.get(`/Users?filter=${encodeURIComponent('emails[userName eq "x"]')}`), 400, 'invalidFilter');
  });

  it('projects sub-attributes of emails in attributes and excludedAttributes (RFC 7644 §3.9–3.10)', async () => {
    const org = await s.organization();
    const [work, home] = [uniqueEmail('work'), uniqueEmail('home')];
    const userName = `p-${guid().slice(0, 6)}`;
    const { id } = expectCreated(
      await org.post('/Users', {
        schemas: [CORE_USER],
        userName,
        displayName: 'Pat',
        emails: [
          { value: work, type: 'work', primary: true },
          { value: home, type: 'home' },
        ],
      }),
      org,
      'User',
    );
    const both = async (query: string) => {
      const byId = expectScim(await org.get(`/Users/${id}?${query}`), 200);
      const listed = expectListResponse(await org.get(`/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}&${query}`), { totalResults: 1 });
      expect(listed[0]).toEqual(byId);
      return byId;
    };
    expect(await both('attributes=emails.value')).toEqual({ schemas: [CORE_USER], id, emails: [{ value: work }, { value: home }] });
    expect(await both(`attributes=emails.value,EMAILS.TYPE,userName`)).toEqual({
      schemas: [CORE_USER],
      id,
      userName,
      emails: [
        { value: work, type: 'work' },
        { value: home, type: 'home' },
      ],
    });
    expect(await both(`attributes=${encodeURIComponent(`${CORE_USER}:emails.primary`)}`)).toEqual({ schemas: [CORE_USER], id, emails: [{ primary: true }] });
    const excluded = await both('excludedAttributes=emails.type,meta');
    expect(excluded).toEqual({ schemas: [CORE_USER], id, userName, displayName: 'Pat', active: true, emails: [{ value: work, primary: true }, { value: home }] });
    expect(await both('excludedAttributes=emails.type,emails.value,emails.primary,meta,displayName')).toEqual({ schemas: [CORE_USER], id, userName, active: true });
  });

  it('renders a member invited through the API whole: its email as userName and as its one work, primary address', async () => {
    const org = await s.organization();
    const email = uniqueEmail('api');
    const invited = await s.t.request('POST', `/api/v1/organizations/${org.oid}/members`, {
      token: org.adminToken,
      body: { emails: [email], role: 'user' },
    });
    expect(invited.status).toBe(201);
    const [found] = expectListResponse(await org.get(`/Users?filter=${encodeURIComponent(`emails[type eq "work"].value eq "${email}"`)}`), { totalResults: 1 });
    expect(found).toEqual({
      schemas: [CORE_USER],
      id: expect.any(String),
      userName: email,
      emails: [{ value: email, type: 'work', primary: true }],
      active: true,
      meta: expect.objectContaining({ resourceType: 'User', location: `${org.baseUrl}/Users/${found.id}` }),
    });
    expect(await find(org, `userName eq "${email}"`)).toEqual([found.id]);

    // Okta deactivates it: what it shows without storing stays unstored, and nothing else moves.
    const off = expectScim(await org.patch(`/Users/${found.id}`, patchOp({ op: 'replace', value: { active: false } })), 200);
    expect(off).toEqual({ ...found, active: false, meta: expect.any(Object) });
    const row = await memberRow(s.t, org.oid, found.id);
    expect(row).toMatchObject({ email, userName: null, profile: null, status: 'revoked' });
  });

  it('renders a member invited by directory sync with its name as displayName and name.formatted, as Okta imports it', async () => {
    const org = await s.organization();
    const email = uniqueEmail('ada');
    const handle = await s.t.engine.organization(org.oid, { kind: 'system' });
    const { invited } = await handle.inviteMembers({ emails: [email], role: 'user', name: 'Ada Lovelace' });
    const id = invited[0]!.id;
    const page = expectListResponse(await org.get('/Users?startIndex=1&count=100'), { totalResults: 1 });
    expect(page[0]).toEqual({
      schemas: [CORE_USER],
      id,
      userName: email,
      displayName: 'Ada Lovelace',
      name: { formatted: 'Ada Lovelace' },
      emails: [{ value: email, type: 'work', primary: true }],
      active: true,
      meta: expect.objectContaining({ resourceType: 'User' }),
    });
    expect(await find(org, 'displayName eq "ada lovelace" and name.formatted sw "Ada"')).toEqual([id]);
    // A PUT of what Okta read back restates it: nothing is recorded.
    const before = await snapshot(s.t, org.oid);
    const { meta: _meta, ...restated } = page[0];
    expectScim(await org.put(`/Users/${id}`, restated), 200);
    expect(await snapshot(s.t, org.oid)).toEqual(before);
  });

  it('answers a PatchOp whose schemas is not exactly the PatchOp URN, or whose Operations is missing or empty, with 400 invalidSyntax, changing nothing', async () => {
    const org = await s.organization();
    const user = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail(), title: 'Kept' }), org, 'User');
    const group = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `G ${guid()}`, members: [] }), org, 'Group');
    const before = await snapshot(s.t, org.oid);
    const operations = [{ op: 'replace', path: 'title', value: 'Changed' }];
    const groupOperations = [{ op: 'add', path: 'members', value: [{ value: user.id }] }];
    const bodies = (ops: unknown[]) => [
      { Operations: ops },
      { schemas: [], Operations: ops },
      { schemas: [CORE_USER], Operations: ops },
      { schemas: PATCH_OP, Operations: ops },
      { schemas: [PATCH_OP, CORE_USER], Operations: ops },
      { schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], Operations: ops },
      { schemas: [PATCH_OP] },
      { schemas: [PATCH_OP], Operations: [] },
    ];
    for (const body of bodies(operations)) expectScimError(await org.patch(`/Users/${user.id}`, body), 400, 'invalidSyntax');
    for (const body of bodies(groupOperations)) expectScimError(await org.patch(`/Groups/${group.id}`, body), 400, 'invalidSyntax');
    expect(await snapshot(s.t, org.oid)).toEqual(before);
    expect(expectScim(await org.get(`/Users/${user.id}`), 200).title).toBe('Kept');
  });

  it("answers a POST or PUT whose schemas lacks the resource's core schema with 400 invalidSyntax, changing nothing", async () => {
    const org = await s.organization();
    const user = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail(), title: 'Kept' }), org, 'User');
    const group = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `G ${guid()}` }), org, 'Group');
    const before = await snapshot(s.t, org.oid);
    const userBody = { userName: uniqueEmail(), title: 'Changed' };
    const groupBody = { displayName: `H ${guid()}` };
    for (const schemas of [undefined, [], [ENTERPRISE_USER], [CORE_GROUP], CORE_USER]) {
      const withSchemas = (body: object) => (schemas === undefined ? body : { schemas, ...body });
      expectScimError(await org.post('/Users', withSchemas(userBody)), 400, 'invalidSyntax');
      expectScimError(await org.put(`/Users/${user.id}`, withSchemas({ ...userBody, userName: user.userName })), 400, 'invalidSyntax');
    }
    for (const schemas of [undefined, [], [CORE_USER]]) {
      const withSchemas = (body: object) => (schemas === undefined ? body : { schemas, ...body });
      expectScimError(await org.post('/Groups', withSchemas(groupBody)), 400, 'invalidSyntax');
      expectScimError(await org.put(`/Groups/${group.id}`, withSchemas(groupBody)), 400, 'invalidSyntax');
    }
    expect(await snapshot(s.t, org.oid)).toEqual(before);
    // The core URN in any case, beside extensions, is enough.
    expectScim(await org.put(`/Users/${user.id}`, { schemas: [CORE_USER.toLowerCase(), ENTERPRISE_USER], userName: user.userName, title: 'Changed' }), 200);
  });

  it("migrates members created through SCIM before userName had its own column: each keeps the userName it showed", async () => {
    const org = await s.organization();
    const db = s.t.testDb.database.db;
    const shown: Record<string, string> = {};
    for (const userName of [`Mixed.Case.${guid().slice(0, 6)}@Example.test`, uniqueEmail('lower')]) {
      const body = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName, title: 'T' }), org, 'User');
      shown[body.id] = body.userName;
    }
    // The rows as 0004 left them: no user_name, the userName as sent in the profile.
    await db.execute(sql`update members set profile = profile || jsonb_build_object('userName', user_name), user_name = null where organization_id = ${org.oid}`);
    const legacy = expectScim(await org.get('/Users'), 200).Resources as { id: string; userName: string }[];
    expect(Object.fromEntries(legacy.map((u) => [u.id, u.userName]))).toEqual(
      Object.fromEntries(Object.entries(shown).map(([id, userName]) => [id, userName.toLowerCase()])),
    );

    // The backfill of migrations/0005_scim_user_name.sql, limited to this organization.
    const migration = readFileSync(new URL('../../migrations/0005_scim_user_name.sql', import.meta.url), 'utf8');
    const backfill = migration
      .split('--> statement-breakpoint')
      .map((statement) => statement.replace(/^\s*--.*$/gm, '').trim())
      .find((statement) => statement.startsWith('UPDATE'));
    expect(backfill).toBeDefined();
    await db.execute(sql.raw(`${backfill!.replace(/;$/, '')} AND "organization_id" = '${org.oid}'`));

    const migrated = expectScim(await org.get('/Users'), 200).Resources as { id: string; userName: string }[];
    expect(Object.fromEntries(migrated.map((u) => [u.id, u.userName]))).toEqual(shown);
    for (const id of Object.keys(shown)) {
      const row = await memberRow(s.t, org.oid, id);
      expect(row?.userName).toBe(shown[id]);
      expect(row?.profile).toEqual({ title: 'T' });
    }
  });
});
