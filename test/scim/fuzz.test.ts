/**
 * Generated hostile input over the SCIM endpoints (fast-check, fixed seed): Users and Groups
 * POST/PUT/PATCH with one attribute, key or operation made hostile at a time, list GETs with hostile
 * filters (dates PostgreSQL cannot store, NULs, unpaired surrogates, deep nesting), startIndex,
 * count and attribute lists, path ids and organization ids that do not decode, and bodies that do
 * not parse or inflate. Whatever happens, the answer is never a 5xx, a refusal is the RFC 7644
 * §3.12 Error in application/scim+json without internal text, and a refusal changes no row.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  digestDatabase,
  expectNoInternalText,
  expectPrototypeClean,
  FUZZ_SEED,
  garbageBody,
  HOSTILE_DATES,
  hostileJsonValue,
  hostileKey,
  hostileText,
  hostileUrlText,
  MALFORMED_ESCAPES,
  rawRequest,
  type RawJson,
} from '../support/hostile.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER, ERROR_SCHEMA, PATCH_OP, scimOrganization, seedProvider, uniqueEmail, type ScimOrg } from '../support/scim.js';

interface Mutation {
  label: string;
  path: string;
  body?: Buffer | string;
  headers: Record<string, string>;
}

type Key = string | number;
const SCIM_TYPE = { 'content-type': 'application/scim+json' };
const MARKER = '\u0001hostile\u0001';

/** `base` with the value at `path` set to `value` (keys such as `__proto__` become own keys), as raw JSON. */
function setAt(base: unknown, path: Key[], value: RawJson): string {
  const copy = JSON.parse(JSON.stringify(base)) as Record<Key, unknown>;
  let node: Record<Key, unknown> = copy;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || !Object.hasOwn(node, key)) {
      Object.defineProperty(node, key, { value: {}, enumerable: true, configurable: true, writable: true });
    }
    node = node[key] as Record<Key, unknown>;
  }
  Object.defineProperty(node, path.at(-1)!, { value: MARKER, enumerable: true, configurable: true, writable: true });
  return JSON.stringify(copy).replace(JSON.stringify(MARKER), value.raw);
}

/** Encoded where encodeURIComponent can; an unpaired surrogate has no encoding, so it goes as bytes that do not decode. */
function encodeLoosely(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return `${encodeURIComponent(text.replace(/\p{Cs}/gu, ''))}%ED%A0%80`;
  }
}

// ---- filters ----------------------------------------------------------------------------------

const USER_ATTRIBUTES = [
  'userName',
  'externalId',
  'displayName',
  'name.givenName',
  'emails.value',
  'emails[type eq "work"].value',
  'meta.created',
  'meta.lastModified',
  'id',
  'active',
  'title',
  `${ENTERPRISE_USER}:department`,
  `${ENTERPRISE_USER}:manager.value`,
];
const GROUP_ATTRIBUTES = ['displayName', 'externalId', 'members.value', 'members', 'meta.created', 'meta.lastModified', 'id'];
const OPERATORS = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr'];

const literal = fc.oneof(
  { weight: 3, arbitrary: hostileText.map((s) => JSON.stringify(s.slice(0, 1_500))) },
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_DATES).map((d) => JSON.stringify(d)) },
  { weight: 2, arbitrary: fc.constantFrom('1e309', '-0', '99999999999999999999', 'true', 'null', '"\\u0000"', '"\\ud800"', '"a\\u0000b"', '"\\udfff"', 'x', '"unterminated') },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

function hostileFilter(attributes: string[]): fc.Arbitrary<string> {
  const comparison = fc
    .tuple(fc.constantFrom(...attributes), fc.constantFrom(...OPERATORS), literal)
    .map(([a, op, value]) => (op === 'pr' ? `${a} pr` : `${a} ${op} ${value}`));
  const dateComparison = fc
    .tuple(fc.constantFrom('meta.created', 'meta.lastModified'), fc.constantFrom('eq', 'ne', 'gt', 'ge', 'lt', 'le'), fc.constantFrom(...HOSTILE_DATES))
    .map(([a, op, date]) => `${a} ${op} ${JSON.stringify(date)}`);
  return fc.oneof(
    { weight: 4, arbitrary: comparison },
    { weight: 3, arbitrary: dateComparison },
    { weight: 2, arbitrary: fc.tuple(comparison, fc.constantFrom('and', 'or', 'and not'), comparison).map(([a, j, b]) => (j === 'and not' ? `${a} and not (${b})` : `${a} ${j} ${b}`)) },
    { weight: 1, arbitrary: fc.tuple(comparison, fc.integer({ min: 50, max: 995 })).map(([c, n]) => `${'('.repeat(n)}${c}${')'.repeat(n)}`) },
    { weight: 1, arbitrary: fc.tuple(comparison, fc.integer({ min: 30, max: 330 })).map(([c, n]) => `${'not ('.repeat(n)}${c}${')'.repeat(n)}`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
    { weight: 1, arbitrary: fc.integer({ min: 2_001, max: 6_000 }).map((n) => `userName eq "${'x'.repeat(n)}"`) },
  );
}

/** A list query with one hostile parameter. */
function hostileListQuery(attributes: string[]): fc.Arbitrary<{ label: string; query: string }> {
  return fc.oneof(
    { weight: 5, arbitrary: hostileFilter(attributes).map((f) => ({ label: `filter ${f.slice(0, 80)}`, query: `filter=${encodeLoosely(f)}` })) },
    { weight: 2, arbitrary: hostileUrlText.map((v) => ({ label: 'raw filter', query: `filter=${v}` })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('startIndex', 'count'), fc.oneof(hostileUrlText, fc.constantFrom('-1', '0', '1e3', '99999999999999999999', '-99999999999999999999', 'NaN', '1.5', '%201', '0x10', '%2B5', '')))
        .map(([name, v]) => ({ label: `${name}=${v.slice(0, 40)}`, query: `${name}=${v}` })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('attributes', 'excludedAttributes'), fc.oneof(hostileUrlText, hostileKey.map(encodeLoosely), fc.constantFrom('__proto__.polluted', 'constructor.prototype', `${encodeURIComponent(ENTERPRISE_USER)}:__proto__`, 'meta.__proto__', ',,,,')))
        .map(([name, v]) => ({ label: `${name}=${v.slice(0, 40)}`, query: `${name}=${v}` })),
    },
    { weight: 1, arbitrary: fc.constantFrom('filter=a&filter=b', 'count=1&count=2', 'startIndex=1&startIndex=2', 'attributes=id&attributes=userName').map((q) => ({ label: q, query: q })) },
  );
}

// ---- bodies -----------------------------------------------------------------------------------

const userBody = () => ({
  schemas: [CORE_USER, ENTERPRISE_USER],
  userName: uniqueEmail('fuzz'),
  externalId: `ext-${uniqueEmail('x')}`,
  active: true,
  displayName: 'Fuzz Target',
  title: 'Tester',
  name: { givenName: 'Fuzz', familyName: 'Target' },
  emails: [{ value: 'fuzz@example.test', type: 'work', primary: true }],
  [ENTERPRISE_USER]: { department: 'QA' },
});

const USER_FIELDS: Key[][] = [
  ['userName'],
  ['externalId'],
  ['active'],
  ['displayName'],
  ['title'],
  ['nickName'],
  ['locale'],
  ['timezone'],
  ['name'],
  ['name', 'givenName'],
  ['name', 'formatted'],
  ['emails'],
  ['emails', 0, 'value'],
  ['emails', 0, 'type'],
  ['phoneNumbers'],
  ['addresses'],
  ['schemas'],
  [ENTERPRISE_USER],
  [ENTERPRISE_USER, 'department'],
  [ENTERPRISE_USER, 'manager'],
  [ENTERPRISE_USER, 'manager', 'value'],
  ['urn:scim:schemas:core:1.0'],
];

const groupBody = (memberId: string) => ({
  schemas: [CORE_GROUP],
  displayName: `Fuzz group ${uniqueEmail('g')}`,
  externalId: `ext-${uniqueEmail('g')}`,
  members: [{ value: memberId, display: 'member' }],
});

const GROUP_FIELDS: Key[][] = [['displayName'], ['externalId'], ['members'], ['members', 0, 'value'], ['members', 0, 'display'], ['schemas']];

/** One hostile attribute, or a hostile key beside the valid ones, of a resource body. */
function hostileResource(base: () => unknown, fields: Key[][]): fc.Arbitrary<{ label: string; body: string }> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...fields), hostileJsonValue).map(([path, v]) => ({ label: `${path.join('.')}: ${v.label}`, body: setAt(base(), path, v) })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom<Key[]>([], ['name'], [ENTERPRISE_USER], ['emails', 0]), hostileKey, hostileJsonValue)
        .map(([at, key, v]) => ({ label: `key ${JSON.stringify(key)} at ${at.join('.')}`, body: setAt(base(), [...at, key], v) })),
    },
    { weight: 1, arbitrary: fc.constantFrom('null', '[]', '"text"', '0', '{"__proto__":{"polluted":"yes"}}', '{"constructor":{"prototype":{"polluted":"yes"}}}').map((body) => ({ label: `body ${body}`, body })) },
  );
}

const USER_PATCH_PATHS = ['title', 'displayName', 'name.givenName', 'emails[type eq "work"].value', 'active', 'externalId', 'userName', `${ENTERPRISE_USER}:department`, `${ENTERPRISE_USER}:manager`];
const GROUP_PATCH_PATHS = ['displayName', 'externalId', 'members'];

/** A PatchOp with one hostile op, path, value or no-path attribute. */
function hostilePatch(paths: string[], group: boolean): fc.Arbitrary<{ label: string; body: string }> {
  const valid = { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: paths[0], value: 'Valid' }] };
  const hostilePath = fc.oneof(
    hostileText,
    fc.constantFrom(
      '__proto__.polluted',
      'constructor.prototype.polluted',
      'emails[value eq "\u0000"].value',
      'emails[type eq "\ud800"].value',
      `members[value eq "${'\u0000'}"]`,
      'members[value eq "x"',
      `emails[${'('.repeat(500)}type eq "work"${')'.repeat(500)}].value`,
      `${ENTERPRISE_USER}:__proto__`,
      'meta.lastModified',
      'id',
      'schemas',
      '',
    ),
  );
  return fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...paths), fc.constantFrom('add', 'replace', 'remove'), hostileJsonValue).map(([path, op, v]) => ({ label: `${op} ${path}: ${v.label}`, body: setAt({ ...valid, Operations: [{ op, path }] }, ['Operations', 0, 'value'], v) })) },
    { weight: 2, arbitrary: fc.tuple(hostilePath, fc.constantFrom('add', 'replace', 'remove')).map(([path, op]) => ({ label: `${op} path ${JSON.stringify(path.slice(0, 60))}`, body: JSON.stringify({ ...valid, Operations: [{ op, path, value: 'x' }] }) })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.oneof(fc.constantFrom(...paths, ENTERPRISE_USER), hostileKey), hostileJsonValue)
        .map(([key, v]) => ({ label: `no-path ${JSON.stringify(key)}: ${v.label}`, body: setAt({ ...valid, Operations: [{ op: 'add' }] }, ['Operations', 0, 'value', key], v) })),
    },
    ...(group
      ? [{ weight: 2, arbitrary: hostileText.map((s) => ({ label: 'members[value eq hostile]', body: JSON.stringify({ ...valid, Operations: [{ op: 'remove', path: `members[value eq ${JSON.stringify(s.slice(0, 200))}]` }] }) })) }]
      : []),
    { weight: 1, arbitrary: hostileJsonValue.map((v) => ({ label: `op: ${v.label}`, body: setAt(valid, ['Operations', 0, 'op'], v) })) },
    { weight: 1, arbitrary: hostileJsonValue.map((v) => ({ label: `Operations: ${v.label}`, body: setAt(valid, ['Operations'], v) })) },
  );
}

describeEachDriver('hostile input on every SCIM endpoint', (driver) => {
  let t: TestApp;
  let org: ScimOrg;
  let userId: string;
  let groupId: string;
  /** The digest of the database as the last refused request left it (a refusal changes nothing). */
  let known: Record<string, string> | undefined;

  beforeAll(async () => {
    t = await startTestApp(driver);
    org = await scimOrganization(t, await seedProvider(t), { seats: 1_000 });
    const user = await org.post('/Users', userBody());
    expect(user.status, JSON.stringify(user.body)).toBe(201);
    userId = user.body.id;
    const group = await org.post('/Groups', groupBody(userId));
    expect(group.status, JSON.stringify(group.body)).toBe(201);
    groupId = group.body.id;
  });
  afterAll(() => t.close());

  /** Sends each mutation and checks the answer and the database. */
  async function check(mutations: fc.Arbitrary<Mutation>, method: string, numRuns: number, examples: Mutation[] = []) {
    const label = (m: Mutation) => Object.assign(m, { [fc.toStringMethod]: () => `${m.label} ${m.path.slice(0, 160)}` });
    await fc.assert(
      fc.asyncProperty(mutations.map(label), async (m) => {
        const before = (known ??= await digestDatabase(t));
        known = undefined;
        const res = await rawRequest(t, method, m.path, { token: org.token, body: m.body, headers: m.headers });
        const what = `${m.label} → ${res.status} ${res.text.slice(0, 300)}`;
        expect(res.status, what).toBeLessThan(500);
        expectPrototypeClean();
        if (res.status < 400) return;
        expect(res.contentType, what).toMatch(/^application\/scim\+json/);
        expect(res.body, what).toMatchObject({ schemas: [ERROR_SCHEMA], status: String(res.status), detail: expect.any(String) });
        expectNoInternalText(res.text);
        const after = await digestDatabase(t);
        expect(after, what).toEqual(before);
        known = after;
      }),
      // The cases the issue names run first, whatever the seed draws.
      { seed: FUZZ_SEED, numRuns, examples: examples.map((m) => [label(m)] as [Mutation]) },
    );
  }

  const body = (label: string, path: string, text: string): Mutation => ({ label, path, body: text, headers: SCIM_TYPE });
  const garbage = (path: () => string, sample: () => unknown) =>
    garbageBody('application/scim+json', JSON.stringify(sample())).map((g) => ({ label: g.label, path: path(), body: g.body, headers: g.headers }));
  const hostileId = (prefix: string, valid: () => unknown) =>
    hostileUrlText.map((id) => body(`:id ${id.slice(0, 40)}`, `${org.path}${prefix}/${id}`, JSON.stringify(valid())));

  it('POST /Users answers hostile attributes below 500, refusing them with a SCIM error and changing nothing', async () => {
    await check(
      fc.oneof(
        { weight: 6, arbitrary: hostileResource(userBody, USER_FIELDS).map((m) => body(m.label, `${org.path}/Users`, m.body)) },
        { weight: 1, arbitrary: garbage(() => `${org.path}/Users`, userBody) },
      ),
      'POST',
      40,
    );
  });

  it('PUT /Users/:id answers hostile attributes and ids below 500, refusing them with a SCIM error and changing nothing', async () => {
    await check(
      fc.oneof(
        { weight: 6, arbitrary: hostileResource(userBody, USER_FIELDS).map((m) => body(m.label, `${org.path}/Users/${userId}`, m.body)) },
        { weight: 1, arbitrary: hostileId('/Users', userBody) },
        { weight: 1, arbitrary: garbage(() => `${org.path}/Users/${userId}`, userBody) },
      ),
      'PUT',
      40,
    );
  });

  it('PATCH /Users/:id answers hostile operations below 500, refusing them with a SCIM error and changing nothing', async () => {
    await check(
      fc.oneof(
        { weight: 6, arbitrary: hostilePatch(USER_PATCH_PATHS, false).map((m) => body(m.label, `${org.path}/Users/${userId}`, m.body)) },
        { weight: 1, arbitrary: hostileId('/Users', () => ({ schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'title', value: 'x' }] })) },
        { weight: 1, arbitrary: garbage(() => `${org.path}/Users/${userId}`, () => ({ schemas: [PATCH_OP], Operations: [] })) },
      ),
      'PATCH',
      40,
    );
  });

  it('POST /Groups answers hostile attributes below 500, refusing them with a SCIM error and changing nothing', async () => {
    await check(
      fc.oneof(
        { weight: 6, arbitrary: hostileResource(() => groupBody(userId), GROUP_FIELDS).map((m) => body(m.label, `${org.path}/Groups`, m.body)) },
        { weight: 1, arbitrary: garbage(() => `${org.path}/Groups`, () => groupBody(userId)) },
      ),
      'POST',
      30,
    );
  });

  it('PUT /Groups/:id answers hostile attributes and ids below 500, refusing them with a SCIM error and changing nothing', async () => {
    await check(
      fc.oneof(
        { weight: 6, arbitrary: hostileResource(() => groupBody(userId), GROUP_FIELDS).map((m) => body(m.label, `${org.path}/Groups/${groupId}`, m.body)) },
        { weight: 1, arbitrary: hostileId('/Groups', () => groupBody(userId)) },
        { weight: 1, arbitrary: garbage(() => `${org.path}/Groups/${groupId}`, () => groupBody(userId)) },
      ),
      'PUT',
      30,
    );
  });

  it('PATCH /Groups/:id answers hostile operations below 500, refusing them with a SCIM error and changing nothing', async () => {
    await check(
      fc.oneof(
        { weight: 6, arbitrary: hostilePatch(GROUP_PATCH_PATHS, true).map((m) => body(m.label, `${org.path}/Groups/${groupId}`, m.body)) },
        { weight: 1, arbitrary: hostileId('/Groups', () => ({ schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: 'x' }] })) },
        { weight: 1, arbitrary: garbage(() => `${org.path}/Groups/${groupId}`, () => ({ schemas: [PATCH_OP], Operations: [] })) },
      ),
      'PATCH',
      30,
    );
  });

  /** Filters the issue names: dates PostgreSQL cannot store, NUL, and nesting deeper than its parser's stack. */
  const NAMED_FILTERS = [
    'meta.lastModified gt "99999-01-01T00:00:00Z"',
    'meta.lastModified gt "+275760-09-13T00:00:00Z"',
    'meta.created lt "-271821-04-20T00:00:00Z"',
    'meta.created ge "0000-01-01"',
    'displayName eq "a\\u0000b"',
    `${'not ('.repeat(200)}id pr${')'.repeat(200)}`,
  ];
  const named = (endpoint: string) =>
    NAMED_FILTERS.map((f) => ({ label: `filter ${f.slice(0, 60)}`, path: `${org.path}${endpoint}?filter=${encodeURIComponent(f)}`, headers: {} }));

  it('GET /Users answers hostile filters, paging and attribute lists below 500, refusing them with a SCIM error', async () => {
    await check(hostileListQuery(USER_ATTRIBUTES).map((q) => ({ label: q.label, path: `${org.path}/Users?${q.query}`, headers: {} })), 'GET', 60, named('/Users'));
  });

  it('GET /Groups answers hostile filters, paging and attribute lists below 500, refusing them with a SCIM error', async () => {
    await check(hostileListQuery(GROUP_ATTRIBUTES).map((q) => ({ label: q.label, path: `${org.path}/Groups?${q.query}`, headers: {} })), 'GET', 50, named('/Groups'));
  });

  it('GET and DELETE of a resource, and discovery, answer an id that does not decode below 500 with a SCIM error', async () => {
    const endpoints = ['/Users', '/Groups', '/Schemas', '/ResourceTypes'];
    for (const method of ['GET', 'DELETE']) {
      await check(
        fc
          .tuple(fc.constantFrom(...endpoints), hostileUrlText, fc.option(fc.constantFrom('attributes=__proto__', 'excludedAttributes=%00', 'attributes=%E0%A4%A'), { nil: undefined }))
          .map(([endpoint, id, query]) => ({ label: `${endpoint}/:id`, path: `${org.path}${endpoint}/${id}${query ? `?${query}` : ''}`, headers: {} })),
        method,
        20,
      );
    }
  });

  it('answers an organization id that does not decode with a SCIM error, whatever the endpoint', async () => {
    await check(
      fc
        .tuple(fc.constantFrom(...MALFORMED_ESCAPES), fc.constantFrom('/Users', '/Groups', `/Users/${userId}`, '/ServiceProviderConfig'))
        .map(([oid, endpoint]) => ({ label: `organization ${oid}`, path: `/scim/v2/${oid}${endpoint}`, headers: {} })),
      'GET',
      15,
    );
  });
});
