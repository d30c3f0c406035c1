/**
 * Parsing is bounded (issue 6, point 2): PATCH paths are read by Portico's linear parser, so no
 * input reaches scimmy's backtracking filter lexer; paths, filters and attribute lists have length
 * caps, and bodies a nesting-depth cap. Each hostile input is answered 400 in the SCIM error
 * schema and changes nothing. There is no clock here: a regression holds the event loop, and the
 * test fails on its timeout.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../src/http/json-depth.js';
import { ScimError } from '../../src/scim/errors.js';
import { MAX_PATH_LENGTH, parsePatchPath } from '../../src/scim/path.js';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  ENTERPRISE_USER,
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

/** Generous: each answer takes milliseconds, and a regression holds the event loop far longer. */
const HOSTILE = { timeout: 20_000 };

/**
 * 201 bytes: a run of backslashes in an unterminated string of a value filter. scimmy 1.3.5's
 * lexer tries every way to split the run between its two string alternatives: 42 backslashes
 * took 12 s in a measurement, and each two more roughly triple it.
 */
const BACKSLASHES = `emails[type eq "${'\\'.repeat(184)}]`;
const BACKSLASH_MEMBERS = `members[value eq "${'\\'.repeat(184)}]`;
/** 80 KB paths: scimmy's path splitter and value-filter extractor are quadratic in them (~10 s). */
const DOTS = '.'.repeat(80_000);
const BRACKETS = '['.repeat(80_000);

/** `[[[…]]]` nested `depth` levels, as JSON text. */
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

const scimTypeOf = (run: () => unknown): string | undefined => {
  try {
    run();
  } catch (error) {
    if (error instanceof ScimError) return error.scimType;
    throw error;
  }
  return undefined;
};

describe('PATCH path parser', () => {
  it('reads attribute paths, sub-attributes, schema URNs and value paths (RFC 7644 §3.5.2)', () => {
    expect(parsePatchPath('title')).toMatchObject({ attribute: 'title', subAttribute: undefined, urn: undefined, filter: undefined });
    expect(parsePatchPath('name.givenName')).toMatchObject({ attribute: 'name', subAttribute: 'givenName' });
    expect(parsePatchPath('members.$ref')).toMatchObject({ attribute: 'members', subAttribute: '$ref' });
    expect(parsePatchPath(`${ENTERPRISE_USER}:manager.value`)).toMatchObject({ urn: ENTERPRISE_USER, attribute: 'manager', subAttribute: 'value' });
    expect(parsePatchPath(`${CORE_USER}:emails[type eq "work"].value`)).toMatchObject({ urn: CORE_USER, attribute: 'emails', subAttribute: 'value' });
    expect(parsePatchPath('emails[type eq "work"].value')).toMatchObject({
      attribute: 'emails',
      subAttribute: 'value',
      filter: { attribute: 'type', op: 'eq', value: 'work' },
    });
    expect(parsePatchPath('members[value eq "a]b" or not (value sw "c")]').filter).toEqual({
      or: [{ attribute: 'value', op: 'eq', value: 'a]b' }, { not: { attribute: 'value', op: 'sw', value: 'c' } }],
    });
  });

  it('refuses malformed and over-long paths as invalidPath, hostile ones included', () => {
    const refused = [
      '',
      '.',
      'name.',
      'name..givenName',
      'name.givenName.x',
      '1title',
      'ti tle',
      'urn:',
      'emails[',
      'emails]',
      'emails[]',
      'emails[type eq "work"',
      'emails[type eq "work"]value',
      'emails[type eq "work"].value.x',
      'emails[type eq "work"][value eq "x"]',
      'emails[type[value eq "x"] eq "y"]',
      'name.givenName[type eq "work"]',
      'emails[type.value eq "work"]',
      'x'.repeat(MAX_PATH_LENGTH + 1),
      BACKSLASHES,
      BACKSLASH_MEMBERS,
      DOTS,
      BRACKETS,
    ];
    for (const path of refused) expect(scimTypeOf(() => parsePatchPath(path)), path.slice(0, 60)).toBe('invalidPath');
    expect(scimTypeOf(() => parsePatchPath('x'.repeat(MAX_PATH_LENGTH)))).toBeUndefined();
  });
});

describeEachDriver('SCIM parsing bounds', (driver) => {
  const s = useScimApp(driver);
  let org: ScimOrg;
  let user: { id: string };
  let other: { id: string };
  let groupId: string;
  let before: Awaited<ReturnType<typeof snapshot>>;

  beforeAll(async () => {
    org = await s.organization();
    user = expectCreated(
      await org.post('/Users', {
        schemas: [CORE_USER],
        userName: uniqueEmail('target'),
        title: 'Original',
        emails: [
          { value: 'target-work@example.test', type: 'work', primary: true },
          { value: 'target-home@example.test', type: 'home' },
        ],
      }),
      org,
      'User',
    );
    other = expectCreated(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail('other') }), org, 'User');
    groupId = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `Bounds ${guid()}`, members: [{ value: user.id }, { value: other.id }] }), org, 'Group').id;
  });
  beforeEach(async () => {
    before = await snapshot(s.t, org.oid);
  });
  const unchanged = async () => {
    expect(await snapshot(s.t, org.oid)).toEqual(before);
    expect(expectScim(await org.get(`/Users/${user.id}`), 200)).toMatchObject({ title: 'Original' });
  };

  it('answers a PATCH path with a run of backslashes in its value filter with 400 invalidPath, changing nothing', HOSTILE, async () => {
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', path: BACKSLASHES, value: 'x@example.test' })), 400, 'invalidPath');
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'remove', path: BACKSLASHES })), 400, 'invalidPath');
    expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'remove', path: BACKSLASH_MEMBERS })), 400, 'invalidPath');
    await unchanged();
  });

  it('answers 80 KB PATCH paths of dots or of brackets with 400 invalidPath, changing nothing', HOSTILE, async () => {
    for (const path of [DOTS, BRACKETS, `emails${BRACKETS}`]) {
      expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', path, value: 'x' })), 400, 'invalidPath');
      expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'remove', path })), 400, 'invalidPath');
    }
    await unchanged();
  });

  it('answers hostile attribute names inside PATCH values with 400, changing nothing', HOSTILE, async () => {
    // A value without a path names attributes (RFC 7644 §3.5.2.3): each name is read as a path.
    for (const key of [BACKSLASHES, DOTS, 'emails[type eq "work"].value']) {
      expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', value: { title: 'Changed', [key]: 'x' } })), 400, 'invalidPath');
      expectScimError(await org.patch(`/Groups/${groupId}`, patchOp({ op: 'replace', value: { displayName: 'Changed', [key]: 'x' } })), 400, 'invalidPath');
    }
    // A value-form remove names sub-attributes, which scimmy would have written into a filter.
    const removal = { [`a eq "${'\\'.repeat(184)}`]: 1 };
    expectScimError(await org.patch(`/Users/${user.id}`, patchOp({ op: 'remove', path: 'emails', value: [removal] })), 400, 'invalidValue');
    await unchanged();
  });

  it(`answers a body nested 3,000 deep (or ${MAX_JSON_DEPTH + 1}) with 400 invalidSyntax on every write, changing nothing`, HOSTILE, async () => {
    const deep = nested(3000);
    const bodies: [string, string, string][] = [
      ['PATCH', `/Users/${user.id}`, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":${deep}}]}`],
      ['PATCH', `/Users/${user.id}`, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"Changed"}],"x":${deep}}`],
      ['PUT', `/Users/${user.id}`, `{"userName":"changed@example.test","name":${deep}}`],
      ['POST', '/Users', `{"userName":"${uniqueEmail()}","name":${deep}}`],
      ['POST', '/Users', `{"userName":"${uniqueEmail()}","x":${nested(MAX_JSON_DEPTH)}}`],
      ['PATCH', `/Groups/${groupId}`, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":${deep}}]}`],
      ['POST', '/Groups', `{"displayName":"Deep","members":${deep}}`],
    ];
    for (const [method, path, raw] of bodies) expectScimError(await org.request(method, path, { raw }), 400, 'invalidSyntax');
    await unchanged();
  });

  it(`takes a body nested ${MAX_JSON_DEPTH} deep as far as its schema`, async () => {
    // 32 levels pass the depth cap; the schema then refuses the unknown attribute as it always has.
    const refused = await org.request('POST', '/Users', { raw: `{"schemas":["${CORE_USER}"],"userName":"${uniqueEmail()}","x":${nested(MAX_JSON_DEPTH - 1)}}` });
    expectScimError(refused, 400, 'invalidSyntax');
    expect(refused.body.detail).toContain('Unknown attribute x');
  });

  it('answers a filter longer than 2,000 characters, or with an unterminated run of backslashes, with 400 invalidFilter', HOSTILE, async () => {
    const long = `userName eq "${'a'.repeat(4_500)}"`;
    const padded = `userName eq "a"${' '.repeat(4_500)}`;
    for (const filter of [long, padded]) {
      expectScimError(await org.get(`/Users?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter');
      expectScimError(await org.get(`/Groups?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter');
    }
    // Portico's own tokenizer, which `filter=` has always gone through, reads this in one pass.
    expectScimError(await org.get(`/Users?filter=${encodeURIComponent(BACKSLASHES)}`), 400, 'invalidFilter');
  });

  it('answers attributes or excludedAttributes lists longer than 4,096 characters with 400 invalidValue', HOSTILE, async () => {
    const list = 'userName,'.repeat(500);
    for (const name of ['attributes', 'excludedAttributes']) {
      expectScimError(await org.get(`/Users?${name}=${list}`), 400, 'invalidValue');
      expectScimError(await org.get(`/Groups/${groupId}?${name}=${list}`), 400, 'invalidValue');
    }
    expect(expectScim(await org.get(`/Users/${user.id}?attributes=userName,emails`), 200)).toEqual({
      schemas: [CORE_USER],
      id: user.id,
      userName: expect.any(String),
      emails: expect.any(Array),
    });
  });

  describe('value paths, applied by Portico rather than scimmy', () => {
    let id: string;
    const emails = async () => expectScim(await org.get(`/Users/${id}`), 200).emails;
    const patch = (...operations: unknown[]) => org.patch(`/Users/${id}`, patchOp(...operations));

    beforeEach(async () => {
      id = expectCreated(
        await org.post('/Users', {
          schemas: [CORE_USER],
          userName: uniqueEmail('paths'),
          emails: [
            { value: 'work@example.test', type: 'work', primary: true },
            { value: 'home@example.test', type: 'home' },
          ],
        }),
        org,
        'User',
      ).id;
    });
    // The primary address is the member's email, unique in the organization: one such user at a time.
    afterEach(async () => {
      expect((await org.delete(`/Users/${id}`)).status).toBe(204);
    });

    it('replaces, adds and removes a sub-attribute of the values a filter selects, comparing as the schema says', async () => {
      // RFC 7643 §4.1.2: `type` is not caseExact, so "WORK" selects the work address.
      expectScim(await patch({ op: 'Replace', path: 'emails[type eq "WORK"].value', value: 'new@example.test' }), 200);
      expectScim(await patch({ op: 'add', path: 'emails[value ew "@example.test" and not (type eq "work")].display', value: 'Home' }), 200);
      expect(await emails()).toEqual([
        { value: 'new@example.test', type: 'work', primary: true },
        { value: 'home@example.test', type: 'home', display: 'Home' },
      ]);
      expectScim(await patch({ op: 'remove', path: 'emails[type eq "home"].display' }), 200);
      expectScim(await patch({ op: 'replace', path: 'emails[value eq "new@example.test"].value', value: 'newer@example.test' }), 200);
      expect(await emails()).toEqual([
        { value: 'newer@example.test', type: 'work', primary: true },
        { value: 'home@example.test', type: 'home' },
      ]);
    });

    it('replaces or removes whole values a filter selects, and answers noTarget when it selects none (RFC 7644 §3.5.2.3)', async () => {
      expectScim(await patch({ op: 'replace', path: 'emails[type eq "home"]', value: { value: 'other@example.test', type: 'other' } }), 200);
      expect(await emails()).toEqual([
        { value: 'work@example.test', type: 'work', primary: true },
        { value: 'other@example.test', type: 'other' },
      ]);
      const state = await snapshot(s.t, org.oid);
      expectScimError(await patch({ op: 'replace', path: 'emails[type eq "home"].value', value: 'x@example.test' }), 400, 'noTarget');
      expectScimError(await patch({ op: 'add', path: 'emails[type eq "home"].display', value: 'x' }), 400, 'noTarget');
      expectScimError(await patch({ op: 'replace', path: 'emails[type eq "work"].nickname', value: 'x' }), 400, 'invalidPath');
      expectScimError(await patch({ op: 'replace', path: 'emails[nickname eq "x"].value', value: 'x' }), 400, 'invalidPath');
      expectScimError(await patch({ op: 'replace', path: 'name[givenName eq "x"].familyName', value: 'x' }), 400, 'invalidPath');
      expectScimError(await patch({ op: 'replace', path: 'emails[type eq "work"].primary', value: 'maybe' }), 400, 'invalidValue');
      expect(await snapshot(s.t, org.oid)).toEqual(state);
      expectScim(await patch({ op: 'remove', path: 'emails[type eq "other"]' }, { op: 'remove', path: 'emails[type eq "none"]' }), 200);
      expect(await emails()).toEqual([{ value: 'work@example.test', type: 'work', primary: true }]);
      // Without addresses the member keeps its email, which it shows as its one address.
      expectScim(await patch({ op: 'remove', path: 'emails[primary eq true]' }), 200);
      expect(await emails()).toEqual([{ value: 'work@example.test', type: 'work', primary: true }]);
    });

    it('adds, replaces and removes a multi-valued attribute whole, by path or by a path-less value (RFC 7644 §3.5.2)', async () => {
      expectScim(await patch({ op: 'add', path: 'emails', value: [{ value: 'third@example.test', type: 'other' }] }), 200);
      expect(await emails()).toHaveLength(3);
      expectScim(await patch({ op: 'replace', value: { emails: [{ value: 'only@example.test', type: 'work' }], title: 'Replaced' } }), 200);
      expect(expectScim(await org.get(`/Users/${id}`), 200)).toMatchObject({ title: 'Replaced', emails: [{ value: 'only@example.test', type: 'work' }] });
      expectScim(await patch({ op: 'add', value: { emails: { value: 'more@example.test' } } }), 200);
      expect(await emails()).toEqual([{ value: 'only@example.test', type: 'work' }, { value: 'more@example.test' }]);
      expectScimError(await patch({ op: 'add', path: 'groups', value: [{ value: id }] }), 400, 'mutability');
      expectScim(await patch({ op: 'remove', path: 'emails' }), 200);
      expect(await emails()).toEqual([{ value: 'only@example.test', type: 'work', primary: true }]);
    });

    it('removes the values a value-form remove lists, and only those', async () => {
      expectScim(await patch({ op: 'remove', path: 'emails', value: [{ value: 'HOME@example.test', type: 'home' }] }), 200);
      expect(await emails()).toEqual([{ value: 'work@example.test', type: 'work', primary: true }]);
      expectScim(await patch({ op: 'remove', path: 'emails', value: [{ value: 'work@example.test', type: 'home' }] }), 200);
      expect(await emails()).toHaveLength(1);
    });

    it('applies value-path operations in order with the plain ones, numbering errors by operation', async () => {
      const applied = expectScim(
        await patch(
          { op: 'add', path: 'emails', value: [{ value: 'third@example.test', type: 'other' }] },
          { op: 'replace', path: 'emails[type eq "other"].display', value: 'Third' },
          { op: 'replace', path: 'title', value: 'Ordered' },
        ),
        200,
      );
      expect(applied.title).toBe('Ordered');
      expect(applied.emails).toContainEqual({ value: 'third@example.test', type: 'other', display: 'Third' });
      const refused = await patch({ op: 'replace', path: 'title', value: 'Not kept' }, { op: 'replace', path: 'favouriteColour', value: 'teal' });
      expectScimError(refused, 400, 'invalidPath');
      expect(refused.body.detail).toContain('operation 2');
      expect(expectScim(await org.get(`/Users/${id}`), 200).title).toBe('Ordered');
    });

    it('removes the group members a filtered members path names', async () => {
      const group = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: `Filtered ${guid()}`, members: [{ value: user.id }, { value: other.id }, { value: id }] }), org, 'Group');
      expect((await org.patch(`/Groups/${group.id}`, patchOp({ op: 'remove', path: `members[value eq "${user.id}" or (value eq "${other.id}")]` }))).status).toBe(204);
      expect(expectScim(await org.get(`/Groups/${group.id}`), 200).members.map((m: { value: string }) => m.value)).toEqual([id]);
    });
  });
});
