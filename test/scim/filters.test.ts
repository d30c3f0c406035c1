/**
 * Filters, paging and attribute projection (RFC 7644 §3.4.2; docs/idp-behaviour.md, What the server
 * must do): every operator on the attributes IdPs filter by, with userName case-insensitive and
 * externalId exact; logical operators and value paths; invalidFilter for anything we cannot
 * answer; Okta-style paging that walks every user once in a stable order.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  expectCreated,
  expectListResponse,
  expectScim,
  expectScimError,
  fixture,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

const MINUTE = 60_000;

describeEachDriver('SCIM filters, paging and projection', (driver) => {
  const s = useScimApp(driver);

  describe('filters', () => {
    let org: ScimOrg;
    /** Created a minute apart, in this order. */
    const ids: Record<'alice' | 'bob' | 'carol' | 'dave', string> = { alice: '', bob: '', carol: '', dave: '' };
    const created: Record<string, string> = {};
    let groupIds: { eng: string; ops: string };

    beforeAll(async () => {
      org = await s.organization();
      const users = {
        alice: { userName: 'Alice.Anders@Example.test', externalId: 'EXT-A', displayName: 'Alice Anders', name: { givenName: 'Alice' } },
        bob: { userName: 'bob.builder@example.test', externalId: 'ext-b', displayName: 'Bob Builder', name: { givenName: 'Bob' } },
        carol: { userName: 'carol.cole@sample.test', externalId: 'ext-c', displayName: 'Carol Cole', name: { givenName: 'Carol' } },
        dave: { userName: 'dave@sample.test' },
      };
      for (const [key, user] of Object.entries(users)) {
        const body = expectCreated(await org.post('/Users', { schemas: [CORE_USER], ...user }), org, 'User');
        ids[key as keyof typeof ids] = body.id;
        created[key] = body.meta.created;
        s.t.clock.advance(MINUTE);
      }
      const eng = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: 'Engineering', externalId: 'G-ENG', members: [{ value: ids.alice }, { value: ids.bob }] }), org, 'Group');
      s.t.clock.advance(MINUTE);
      const ops = expectCreated(await org.post('/Groups', { schemas: [CORE_GROUP], displayName: 'Operations', members: [] }), org, 'Group');
      groupIds = { eng: eng.id, ops: ops.id };
      // Dave is deactivated: still found by filters, with active false.
      expectScim(await org.patch(`/Users/${ids.dave}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] }), 200);
    });

    /** The ids a user filter matches, in the order answered (creation order). */
    const users = async (filter: string) =>
      expectListResponse(await org.get(`/Users?filter=${encodeURIComponent(filter)}`), {
        totalResults: (await org.get(`/Users?filter=${encodeURIComponent(filter)}&count=0`)).body.totalResults,
      }).map((u) => u.id as string);
    const names = (...keys: (keyof typeof ids)[]) => keys.map((k) => ids[k]);
    const at = (key: string, offsetMs = 0) => new Date(new Date(created[key]!).getTime() + offsetMs).toISOString();

    it('compares userName case-insensitively with every operator', async () => {
      const cases: [string, (keyof typeof ids)[]][] = [
        ['userName eq "ALICE.ANDERS@EXAMPLE.TEST"', ['alice']],
        ['userName ne "alice.anders@example.test"', ['bob', 'carol', 'dave']],
        ['userName co "BUILD"', ['bob']],
        ['userName sw "CAROL"', ['carol']],
        ['userName ew "@SAMPLE.TEST"', ['carol', 'dave']],
        ['userName pr', ['alice', 'bob', 'carol', 'dave']],
        ['userName gt "BOB"', ['bob', 'carol', 'dave']],
        ['userName ge "Bob.Builder@example.test"', ['bob', 'carol', 'dave']],
        ['userName lt "BOB"', ['alice']],
        ['userName le "bob.builder@example.test"', ['alice', 'bob']],
      ];
      for (const [filter, expected] of cases) expect(await users(filter), filter).toEqual(names(...expected));
    });

    it('compares externalId exactly, case included', async () => {
      const cases: [string, (keyof typeof ids)[]][] = [
        ['externalId eq "EXT-A"', ['alice']],
        ['externalId eq "ext-a"', []],
        ['externalId co "ext"', ['bob', 'carol']],
        ['externalId sw "EXT"', ['alice']],
        ['externalId ew "-C"', []],
        ['externalId ne "ext-b"', ['alice', 'carol', 'dave']],
        ['externalId pr', ['alice', 'bob', 'carol']],
        ['externalId gt "ext-b"', ['carol']],
        ['externalId lt "ext-b"', ['alice']],
      ];
      for (const [filter, expected] of cases) expect(await users(filter), filter).toEqual(names(...expected));
    });

    it('filters displayName and name.givenName case-insensitively', async () => {
      const cases: [string, (keyof typeof ids)[]][] = [
        ['displayName eq "bob builder"', ['bob']],
        ['displayName co "COLE"', ['carol']],
        ['displayName sw "a"', ['alice']],
        ['displayName pr', ['alice', 'bob', 'carol']],
        ['displayName ne "BOB BUILDER"', ['alice', 'carol', 'dave']],
        ['displayName ew "COLE"', ['carol']],
        ['displayName gt "B"', ['bob', 'carol']],
        ['displayName lt "b"', ['alice']],
        ['name.givenName eq "ALICE"', ['alice']],
        ['name.givenName sw "ca"', ['carol']],
        ['name.givenName ew "B"', ['bob']],
        ['name.givenName pr', ['alice', 'bob', 'carol']],
        ['name.givenName ne "alice"', ['bob', 'carol', 'dave']],
        ['name.givenName co "AR"', ['carol']],
        ['name.givenName gt "b"', ['bob', 'carol']],
        ['name.givenName lt "BOB"', ['alice']],
        [`${CORE_USER}:name.givenName eq "bob"`, ['bob']],
      ];
      for (const [filter, expected] of cases) expect(await users(filter), filter).toEqual(names(...expected));
    });

    it('compares meta.created as a date', async () => {
      const cases: [string, (keyof typeof ids)[]][] = [
        [`meta.created gt "${at('alice', 30_000)}"`, ['bob', 'carol', 'dave']],
        [`meta.created lt "${at('bob', 30_000)}"`, ['alice', 'bob']],
        [`meta.created ge "${at('carol')}"`, ['carol', 'dave']],
        [`meta.created le "${at('carol')}"`, ['alice', 'bob', 'carol']],
        [`meta.created eq "${at('bob')}"`, ['bob']],
        [`meta.created ne "${at('bob')}"`, ['alice', 'carol', 'dave']],
        ['meta.created pr', ['alice', 'bob', 'carol', 'dave']],
        [`meta.created gt "${at('alice', 30_000)}" and meta.created lt "${at('carol', 30_000)}"`, ['bob', 'carol']],
      ];
      for (const [filter, expected] of cases) expect(await users(filter), filter).toEqual(names(...expected));
    });

    it('combines comparisons with and, or, not and grouping', async () => {
      const cases: [string, (keyof typeof ids)[]][] = [
        ['userName sw "alice" or userName sw "bob"', ['alice', 'bob']],
        ['userName ew "sample.test" and externalId pr', ['carol']],
        ['not (userName co "example")', ['carol', 'dave']],
        ['(userName ew "sample.test" or userName sw "alice") and not (name.givenName eq "carol")', ['alice', 'dave']],
        ['userName eq "nobody@example.test" or (externalId eq "ext-b" and displayName co "builder")', ['bob']],
        ['active eq false', ['dave']],
        ['active eq true and userName ew "sample.test"', ['carol']],
        // and binds tighter than or.
        ['userName sw "alice" or userName sw "bob" and externalId eq "nope"', ['alice']],
        // not negates the whole group (De Morgan), and an unassigned attribute's comparison is false, so its not is true.
        ['not (userName sw "alice" or userName sw "bob")', ['carol', 'dave']],
        ['not (userName ew "sample.test" and externalId pr)', ['alice', 'bob', 'dave']],
        ['not (name.givenName eq "carol")', ['alice', 'bob', 'dave']],
        ['not (displayName co "o")', ['alice', 'dave']],
        ['not (not (userName sw "bob"))', ['bob']],
      ];
      for (const [filter, expected] of cases) expect(await users(filter), filter).toEqual(names(...expected));
    });

    it('matches value paths on emails', async () => {
      const cases: [string, (keyof typeof ids)[]][] = [
        ['emails[type eq "work"].value eq "DAVE@sample.test"', ['dave']],
        ['emails[value co "SAMPLE"]', ['carol', 'dave']],
        ['emails.value sw "bob"', ['bob']],
        ['emails[type eq "work" and value ew "example.test"]', ['alice', 'bob']],
        // Each shows its email as its one address, of type work: none has a home address.
        ['not (emails[type eq "home"])', ['alice', 'bob', 'carol', 'dave']],
        ['userName sw "a" or emails[type eq "home"]', ['alice']],
        ['emails.type eq "work" and emails.primary eq true', ['alice', 'bob', 'carol', 'dave']],
      ];
      for (const [filter, expected] of cases) expect(await users(filter), filter).toEqual(names(...expected));
    });

    it('filters groups by displayName case-insensitively, externalId exactly, and by member', async () => {
      const groups = async (filter: string) =>
        (await org.get(`/Groups?filter=${encodeURIComponent(filter)}`)).body.Resources.map((g: { id: string }) => g.id);
      expect(await groups('displayName eq "ENGINEERING"')).toEqual([groupIds.eng]);
      expect(await groups('displayName sw "op"')).toEqual([groupIds.ops]);
      expect(await groups('externalId eq "G-ENG"')).toEqual([groupIds.eng]);
      expect(await groups('externalId eq "g-eng"')).toEqual([]);
      expect(await groups(`members.value eq "${ids.bob}"`)).toEqual([groupIds.eng]);
      expect(await groups(`members[value eq "${ids.carol}"]`)).toEqual([]);
      expect(await groups('displayName co "ing" or displayName co "tion"')).toEqual([groupIds.eng, groupIds.ops]);
    });

    it('answers unknown attributes and bad syntax with 400 invalidFilter', async () => {
      const bad = [
        'userName zz "x"',
        'userName eq',
        'userName eq "a" and',
        'userName eq "a" or',
        '(userName eq "a"',
        'frob eq "x"',
        'name.frob eq "x"',
        'urn:example:params:scim:Frob:thing eq "x"',
        'meta.created gt "not a date"',
        'meta.created sw "2026"',
        'active eq "perhaps"',
        'userName eq 5',
        'userName eq unquoted',
        'not userName eq "a"',
        '"a" eq userName',
        'userName eq "a")',
        'emails[type eq "work"',
      ];
      for (const filter of bad) {
        const res = await org.get(`/Users?filter=${encodeURIComponent(filter)}`);
        expectScimError(res, 400, 'invalidFilter');
      }
      for (const filter of ['frob eq "x"', 'displayName zz "x"', 'displayName eq "a" and']) {
        expectScimError(await org.get(`/Groups?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter');
      }
    });

    it('projects users with attributes (sub-attributes and URN-qualified names too) and excludedAttributes, always keeping id and schemas', async () => {
      const one = async (query: string) => {
        const list = expectListResponse(await org.get(`/Users?filter=${encodeURIComponent('externalId eq "EXT-A"')}&${query}`), { totalResults: 1 });
        const byId = expectScim(await org.get(`/Users/${ids.alice}?${query}`), 200);
        expect(list[0]).toEqual(byId);
        return byId;
      };
      expect(await one('attributes=userName')).toEqual({ schemas: [CORE_USER], id: ids.alice, userName: 'Alice.Anders@Example.test' });
      expect(await one('attributes=name.givenName,externalId')).toEqual({
        schemas: [CORE_USER],
        id: ids.alice,
        name: { givenName: 'Alice' },
        externalId: 'EXT-A',
      });
      expect(await one(`attributes=${encodeURIComponent(`${CORE_USER}:displayName`)}`)).toEqual({
        schemas: [CORE_USER],
        id: ids.alice,
        displayName: 'Alice Anders',
      });
      expect(await one('attributes=groups')).toEqual({
        schemas: [CORE_USER],
        id: ids.alice,
        groups: [{ value: groupIds.eng, display: 'Engineering', $ref: `${org.baseUrl}/Groups/${groupIds.eng}` }],
      });
      const excluded = await one('excludedAttributes=emails,name,meta,groups,id');
      expect(excluded).toEqual({
        schemas: [CORE_USER],
        id: ids.alice,
        externalId: 'EXT-A',
        userName: 'Alice.Anders@Example.test',
        displayName: 'Alice Anders',
        active: true,
      });
    });

    it('projects groups: excludedAttributes=members leaves members out, attributes=displayName keeps only it', async () => {
      const without = expectScim(await org.get(`/Groups/${groupIds.eng}?excludedAttributes=members`), 200);
      expect(without).not.toHaveProperty('members');
      expect(without).toMatchObject({ id: groupIds.eng, displayName: 'Engineering', externalId: 'G-ENG' });
      const only = expectListResponse(await org.get('/Groups?attributes=displayName'), { totalResults: 2 });
      expect(only).toEqual([
        { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], id: groupIds.eng, displayName: 'Engineering' },
        { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], id: groupIds.ops, displayName: 'Operations' },
      ]);
    });
  });

  describe('paging', () => {
    const TOTAL = 250;
    let org: ScimOrg;
    /** Every created user in the expected stable order: creation time, then id. */
    let expectedUsers: { id: string; userName: string }[];
    let expected: string[];

    beforeAll(async () => {
      org = await s.organization({ seats: TOTAL });
      const made: { id: string; userName: string; created: string }[] = [];
      // Batches of ten in parallel; the clock moves every 50 users, so pages cross both creation
      // times and runs of users sharing one instant (ordered by id).
      for (let batch = 0; batch < TOTAL / 10; batch++) {
        if (batch % 5 === 0) s.t.clock.advance(MINUTE);
        const responses = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            org.post(
              '/Users',
              fixture('okta', 'create-user', {
                userName: `page-${String(batch * 10 + i).padStart(3, '0')}@example.test`,
                externalId: `okta-${batch * 10 + i}`,
                password: 'not-kept',
              }),
            ),
          ),
        );
        for (const res of responses) {
          const body = expectCreated(res, org, 'User');
          made.push({ id: body.id, userName: body.userName, created: body.meta.created });
        }
      }
      expectedUsers = made.sort((a, b) => (a.created === b.created ? (a.id < b.id ? -1 : 1) : a.created < b.created ? -1 : 1));
      expected = expectedUsers.map((u) => u.id);
    });

    async function walk(): Promise<string[]> {
      const seen: string[] = [];
      for (const [startIndex, size] of [
        [1, 100],
        [101, 100],
        [201, 50],
      ] as const) {
        const page = expectListResponse(await org.get(`/Users?startIndex=${startIndex}&count=100`), {
          totalResults: TOTAL,
          startIndex,
          itemsPerPage: size,
        });
        seen.push(...page.map((u) => u.id as string));
      }
      return seen;
    }

    it('walks 250 users with startIndex 1, 101, 201 and count=100 exactly once each, in a stable order', async () => {
      const first = await walk();
      expect(new Set(first).size).toBe(TOTAL);
      expect(first).toEqual(expected);
      expect(await walk()).toEqual(first);
    });

    it('pages a filtered list with the filtered total', async () => {
      const filter = encodeURIComponent('userName sw "page-1"');
      const page = expectListResponse(await org.get(`/Users?filter=${filter}&startIndex=91&count=20`), {
        totalResults: 100,
        startIndex: 91,
        itemsPerPage: 10,
      });
      const matching = expectedUsers.filter((u) => u.userName.startsWith('page-1'));
      expect(matching).toHaveLength(100);
      expect(page.map((u) => u.id)).toEqual(matching.slice(90, 100).map((u) => u.id));
    });

    it('answers a startIndex past the end with an empty page that still carries totalResults', async () => {
      for (const startIndex of [251, 1000]) {
        const page = expectListResponse(await org.get(`/Users?startIndex=${startIndex}&count=100`), {
          totalResults: TOTAL,
          startIndex,
          itemsPerPage: 0,
        });
        expect(page).toEqual([]);
      }
    });

    it('answers count=0 with totalResults and no resources', async () => {
      const res = await org.get('/Users?count=0');
      expect(expectListResponse(res, { totalResults: TOTAL, itemsPerPage: 0 })).toEqual([]);
    });

    it('caps count at the maxResults ServiceProviderConfig advertises, and reads startIndex below 1 as 1', async () => {
      const { maxResults } = expectScim(await org.get('/ServiceProviderConfig'), 200).filter;
      expect(maxResults).toBeLessThan(TOTAL);
      const capped = expectListResponse(await org.get('/Users?count=1000'), { totalResults: TOTAL, itemsPerPage: maxResults });
      expect(capped.map((u) => u.id)).toEqual(expected.slice(0, maxResults));
      const zero = expectListResponse(await org.get('/Users?startIndex=0&count=3'), { totalResults: TOTAL, startIndex: 1 });
      expect(zero.map((u) => u.id)).toEqual(expected.slice(0, 3));
    });

    it('answers a startIndex or count that is not an integer with 400 invalidValue', async () => {
      expectScimError(await org.get('/Users?startIndex=abc'), 400, 'invalidValue');
      expectScimError(await org.get('/Users?count=1.5'), 400, 'invalidValue');
    });
  });
});
