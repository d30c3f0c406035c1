/**
 * Bad input answers the SCIM error schema (RFC 7644 §3.12: schemas Error, status as a string,
 * detail, scimType where one applies) and changes nothing: members, groups, memberships and the
 * event count are read back after every refusal.
 */
import { request as httpRequest } from 'node:http';
import { beforeAll, beforeEach, expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  expectCreated,
  expectScim,
  expectScimError,
  guid,
  patchOp,
  snapshot,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

describeEachDriver('SCIM bad input', (driver) => {
  const s = useScimApp(driver);
  let org: ScimOrg;
  let user: { id: string; userName: string };
  let groupId: string;
  let before: Awaited<ReturnType<typeof snapshot>>;

  beforeAll(async () => {
    org = await s.organization();
    const created = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('victim'), title: 'Original' }), org, 'User');
    user = { id: created.id, userName: created.userName };
    groupId = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `Victims ${guid()}`, members: [{ value: user.id }] }), org, 'Group').id;
  });
  beforeEach(async () => {
    before = await snapshot(s.t, org.oid);
  });
  const unchanged = async () => expect(await snapshot(s.t, org.oid)).toEqual(before);

  it('answers malformed JSON with 400 invalidSyntax on every write, changing nothing', async () => {
    const raw = '{"userName": "x@example.test",';
    for (const [method, path] of [
      ['POST', '/Users'],
      ['PUT', `/Users/${user.id}`],
      ['PATCH', `/Users/${user.id}`],
      ['POST', '/Groups'],
      ['PUT', `/Groups/${groupId}`],
      ['PATCH', `/Groups/${groupId}`],
    ] as const) {
      expectScimError(await org.request(method, path, { raw }), 400, 'invalidSyntax');
    }
    await unchanged();
  });

  it('answers wrong types with 400 invalidValue, changing nothing', async () => {
    const bodies: [string, string, unknown][] = [
      ['POST', '/Users', { userName: 5 }],
      ['POST', '/Users', { userName: uniqueEmail(), active: 'perhaps' }],
      ['POST', '/Users', { userName: uniqueEmail(), name: 'Just A String' }],
      ['POST', '/Users', { userName: 'not-an-email' }],
      ['POST', '/Users', { name: { givenName: 'No userName' } }],
      ['PUT', `/Users/${user.id}`, { userName: 5 }],
      ['POST', '/Groups', { displayName: 5 }],
      ['POST', '/Groups', { displayName: `Typed ${guid()}`, members: [{ value: 5 }] }],
      ['POST', '/Groups', { displayName: `Missing ${guid()}`, members: [{ display: 'no value' }] }],
    ];
    for (const [method, path, body] of bodies) {
      const res = await org.request(method, path, { body: { schemas: [path.startsWith('/Users') ? CORE_USER : CORE_GROUP], ...(body as object) } });
      expectScimError(res, 400, 'invalidValue');
    }
    await unchanged();
  });

  it('answers an unknown attribute with 400 invalidSyntax naming it, changing nothing', async () => {
    const created = await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail(), favouriteColour: 'teal' });
    expectScimError(created, 400, 'invalidSyntax');
    expect(created.body.detail).toContain('favouriteColour');
    expectScimError(await org.put(`/Users/${user.id}`, { schemas: [CORE_USER], userName: user.userName, favouriteColour: 'teal' }), 400, 'invalidSyntax');
    expectScimError(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `G ${guid()}`, colour: 'teal' }), 400, 'invalidSyntax');
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', path: 'favouriteColour', value: 'teal' })), 400, 'invalidPath');
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'replace', path: 'colour', value: 'teal' })), 400, 'invalidPath');
    await unchanged();
  });

  it('answers a body over the limit with 413, changing nothing', async () => {
    const huge = { userName: uniqueEmail(), title: 'x'.repeat(110 * 1024) };
    expectScimError(await org.post('/Users', huge), 413);
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', path: 'title', value: huge.title })), 413);
    await unchanged();
  });

  it('answers a body that is not JSON, or in an unsupported charset, with 415, changing nothing', async () => {
    for (const [method, path] of [
      ['POST', '/Users'],
      ['PUT', `/Users/${user.id}`],
      ['PATCH', `/Users/${user.id}`],
      ['POST', '/Groups'],
      ['PATCH', `/Groups/${groupId}`],
    ] as const) {
      const form = await org.request(method, path, { raw: `userName=${uniqueEmail()}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expectScimError(form, 415);
      const text = await org.request(method, path, { raw: JSON.stringify({ userName: uniqueEmail() }), headers: { 'content-type': 'text/plain' } });
      expectScimError(text, 415);
    }
    const charset = await org.request('POST', '/Users', {
      raw: JSON.stringify({ userName: uniqueEmail() }),
      headers: { 'content-type': 'application/scim+json; charset=latin-9' },
    });
    expectScimError(charset, 415);
    await unchanged();
  });

  it('answers a PatchOp with an unknown op, no Operations or too many operations with 400, changing nothing', async () => {
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'merge', path: 'title', value: 'x' })), 400, 'invalidSyntax');
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'upsert', path: 'members', value: [] })), 400, 'invalidSyntax');
    expectScimError(await org.patch(`/Users/${user.id}`, { schemas: [] }), 400, 'invalidSyntax');
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp()), 400, 'invalidSyntax');
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ path: 'title', value: 'no op' })), 400, 'invalidSyntax');
    const many = Array.from({ length: 1001 }, (_, i) => ({ op: 'replace', path: 'title', value: `t${i}` }));
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp(...many)), 400, 'tooMany');
    // Ops that cannot apply to a group.
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'add', path: `members[value eq "${user.id}"]` })), 400, 'invalidPath');
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'remove', path: 'displayName' })), 400, 'mutability');
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'remove' })), 400, 'noTarget');
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'remove' })), 400, 'noTarget');
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'add', value: 'not an object' })), 400, 'invalidValue');
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'remove', path: 'members[value sw "a"]' })), 400, 'invalidFilter');
    await unchanged();
  });

  it('refuses a user PATCH replacing the read-only id with 400 mutability, and ignores an id inside a no-path value', async () => {
    const refused = await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', path: 'id', value: guid() }));
    expectScimError(refused, 400, 'mutability');
    await unchanged();

    // Okta-style: read-only attributes sent back inside a value are ignored; the rest applies.
    const applied = expectScim(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', value: { id: guid(), title: 'Changed' } })), 200);
    expect(applied).toMatchObject({ schemas: [CORE_USER], id: user.id, title: 'Changed' });
    expect(expectScim(await org.get(`/Users/${user.id}`), 200)).toMatchObject({ id: user.id, title: 'Changed' });
    expect(expectScim(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', path: 'title', value: 'Original' })), 200).title).toBe('Original');
  });

  it('ignores a group PATCH on the read-only id or meta, answering 204 and changing nothing', async () => {
    const res = await org.patch(`/Groups/${groupId}`, patchOp({ op: 'replace', path: 'id', value: guid() }, { op: 'replace', path: 'meta.created', value: '2000-01-01T00:00:00Z' }));
    expect(res.status).toBe(204);
    await unchanged();
    expect(expectScim(await org.get(`/Groups/${groupId}`), 200).id).toBe(groupId);
  });

  it('answers a missing, malformed or wrong key with 401 and WWW-Authenticate: Bearer, changing nothing', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Basic dXNlcjpwYXNz' },
      { authorization: 'Bearer' },
      { authorization: `Bearer ${org.token}x` },
    ];
    for (const headers of attempts) {
      expectScimError(await org.request('GET', '/Users', { token: null, headers }), 401);
      expectScimError(await org.request('POST', '/Users', { token: null, headers, body: { userName: uniqueEmail() } }), 401);
      // The key is checked before the body is read: a malformed body without a key is still 401.
      expectScimError(await org.request('POST', '/Users', { token: null, headers, raw: '{"userName":' }), 401);
      expectScimError(await org.request('DELETE', `/Users/${user.id}`, { token: null, headers }), 401);
    }
    await unchanged();
  });

  it('answers an unknown endpoint or resource id with 404 in the SCIM error schema', async () => {
    expectScimError(await org.get('/Frobnicators'), 404);
    expectScimError(await org.get(`/Users/${guid()}`), 404);
    expectScimError(await org.get('/Users/not-an-id'), 404);
    expectScimError(await org.patch(`/Groups/${guid()}`, patchOp({ op: 'add', path: 'members', value: [{ value: user.id }] })), 404);
    await unchanged();
  });

  it('answers If-None-Match with the resource, never 304: ServiceProviderConfig says ETags are not supported', async () => {
    // A plain HTTP client (fetch adds Cache-Control: no-cache, which hides a 304).
    const url = new URL(`${s.t.url}${org.path}/Users/${user.id}`);
    const response = await new Promise<{ status: number; etag: string | undefined }>((resolve, reject) => {
      const req = httpRequest(url, { headers: { authorization: `Bearer ${org.token}`, 'if-none-match': '*' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, etag: res.headers.etag }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(response).toEqual({ status: 200, etag: undefined });
    const plain = await org.get(`/Users/${user.id}`);
    expect(plain.headers.get('etag')).toBeNull();
    expect(expectScim(plain, 200).meta).not.toHaveProperty('version');
  });
});
