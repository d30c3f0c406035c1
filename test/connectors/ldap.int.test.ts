/**
 * The LDAP connector against a real OpenLDAP slapd started here (test/support/slapd.ts): one
 * server per file, seeded by slapadd, with TLS from a private CA and accounts with AD-like limits.
 */
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDirectorySource } from '../../connectors/index.js';
import { resolveConnectionSettings } from '../../src/sync/presets.js';
import type { DirectoryConfigInput } from '../../src/sync/settings.js';
import { DirectoryReadError } from '../../src/sync/source.js';
import { directoryReader } from '../support/directory-read.js';
import { slapdAvailable, startCuttingProxy, startSlapd, type Slapd } from '../support/slapd.js';

const SUFFIX = 'dc=example,dc=test';
const BULK_USERS = 5000;
const AD_LIKE = { name: 'adlike', password: 'adlike-secret', limits: 'size.soft=1000 size.hard=1000 size.prtotal=unlimited' };
const CAPPED = { name: 'capped', password: 'capped-secret', limits: 'size.soft=1000 size.hard=1000 size.prtotal=1000' };

const SEED = `
dn: ou=People,${SUFFIX}
objectClass: organizationalUnit
ou: People

dn: ou=Staff,ou=People,${SUFFIX}
objectClass: organizationalUnit
ou: Staff

dn: ou=Groups,${SUFFIX}
objectClass: organizationalUnit
ou: Groups

dn: uid=alice,ou=People,${SUFFIX}
objectClass: inetOrgPerson
uid: alice
cn: Alice Archer
sn: Archer
mail: Alice.Archer@Example.TEST

dn: uid=bob,ou=People,${SUFFIX}
objectClass: inetOrgPerson
uid: bob
cn: Bob Baker
sn: Baker
mail: bob@example.test

dn: uid=carol,ou=People,${SUFFIX}
objectClass: inetOrgPerson
uid: carol
cn: Carol Cook
sn: Cook

dn: uid=dave,ou=People,${SUFFIX}
objectClass: inetOrgPerson
uid: dave
cn: Dave Dyer
sn: Dyer
mail: dave@example.test
employeeType: disabled

dn: uid=erin,ou=People,${SUFFIX}
objectClass: inetOrgPerson
objectClass: posixAccount
uid: erin
cn: Erin Evans
sn: Evans
mail: erin@example.test
uidNumber: 1005
gidNumber: 1005
homeDirectory: /home/erin

dn: uid=mover,ou=People,${SUFFIX}
objectClass: inetOrgPerson
uid: mover
cn: Morgan Mover
sn: Mover
mail: mover@example.test

dn: cn=Admins,ou=Groups,${SUFFIX}
objectClass: groupOfNames
cn: Admins
member: UID=Alice , OU=People,DC=Example,DC=Test
member: cn=nested,ou=groups,${SUFFIX}
member: uid=mover,ou=People,${SUFFIX}

dn: cn=Nested,ou=Groups,${SUFFIX}
objectClass: groupOfNames
cn: Nested
member: uid=bob,ou=people,dc=example,dc=test
member: CN=Admins,OU=Groups,DC=EXAMPLE,DC=TEST

dn: cn=Unique,ou=Groups,${SUFFIX}
objectClass: groupOfUniqueNames
cn: Unique
uniqueMember: uid=carol,ou=People,${SUFFIX}
uniqueMember: uid=ghost,ou=People,${SUFFIX}

dn: cn=posix,ou=Groups,${SUFFIX}
objectClass: posixGroup
cn: posix
gidNumber: 2000
memberUid: erin
memberUid: ALICE
memberUid: nobody
`;

function bulkLdif(count: number): string {
  const entries = [`dn: ou=Bulk,${SUFFIX}\nobjectClass: organizationalUnit\nou: Bulk\n`];
  for (let i = 0; i < count; i++) {
    entries.push(`dn: uid=bulk${i},ou=Bulk,${SUFFIX}\nobjectClass: inetOrgPerson\nuid: bulk${i}\ncn: Bulk ${i}\nsn: ${i}\nmail: bulk${i}@example.test\n`);
  }
  return entries.join('\n');
}

// CI installs slapd (.ci/run): there a missing server is a failure, not a skip.
if (process.env.CI === 'true' && !slapdAvailable) throw new Error('slapd is not installed: apt-get install -y slapd ldap-utils');

let slapd: Slapd;

function config(overrides: Partial<DirectoryConfigInput> = {}): DirectoryConfigInput {
  return {
    kind: 'ldap',
    preset: 'openldap',
    url: slapd.url,
    bindDn: slapd.adminDn,
    users: { baseDn: `ou=People,${SUFFIX}`, disabledFilter: '(employeeType=disabled)' },
    groups: { baseDn: `ou=Groups,${SUFFIX}` },
    timeLimitSeconds: 30,
    ...overrides,
  };
}

const { read, readError } = directoryReader(() => slapd.adminPassword);

async function asAdmin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ url: slapd.url });
  await client.bind(slapd.adminDn, slapd.adminPassword);
  try {
    return await work(client);
  } finally {
    await client.unbind();
  }
}

describe.skipIf(!slapdAvailable)('LDAP connector against OpenLDAP (slapd; install slapd ldap-utils)', () => {
  beforeAll(async () => {
    slapd = await startSlapd({ suffix: SUFFIX, ldif: `${SEED}\n${bulkLdif(BULK_USERS)}`, limitedAccounts: [AD_LIKE, CAPPED], tls: true });
  });
  afterAll(async () => {
    await slapd?.stop();
  });

  it('reads users with stable ids, trimmed lower-cased emails, missing emails as null and the disabled rule', async () => {
    const snapshot = await read(config());
    const byUid = new Map(snapshot.users.map((u) => [u.dn.split(',')[0]!.slice(4), u]));
    expect([...byUid.keys()].sort()).toEqual(['alice', 'bob', 'carol', 'dave', 'erin', 'mover']);
    for (const user of snapshot.users) expect(user.externalId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(byUid.get('alice')).toMatchObject({ email: 'alice.archer@example.test', name: 'Alice Archer', disabled: false, dn: `uid=alice,ou=people,dc=example,dc=test` });
    expect(byUid.get('carol')).toMatchObject({ email: null, disabled: false });
    expect(byUid.get('dave')).toMatchObject({ email: 'dave@example.test', disabled: true });
    expect(snapshot.users.filter((u) => u.disabled)).toHaveLength(1);
  });

  it('resolves member DNs written in other case and spacing, uniqueMember, memberUid and nested cyclic groups', async () => {
    const snapshot = await read(config());
    const id = (uid: string) => snapshot.users.find((u) => u.dn.startsWith(`uid=${uid},`))!.externalId;
    const group = (name: string) => snapshot.groups.find((g) => g.name === name)!;
    expect(snapshot.groups.map((g) => g.name).sort()).toEqual(['Admins', 'Nested', 'Unique', 'posix']);
    expect(group('Admins').memberExternalIds.sort()).toEqual([id('alice'), id('mover')].sort());
    expect(group('Admins').groupExternalIds).toEqual([group('Nested').externalId]);
    expect(group('Nested').memberExternalIds).toEqual([id('bob')]);
    expect(group('Nested').groupExternalIds).toEqual([group('Admins').externalId]);
    expect(group('Unique').memberExternalIds).toEqual([id('carol')]);
    expect(group('posix').memberExternalIds.sort()).toEqual([id('erin'), id('alice')].sort());
    expect(snapshot.warnings).toEqual(
      expect.arrayContaining([expect.stringContaining('uid=ghost,ou=People'), expect.stringContaining('memberUid "nobody"')]),
    );
    expect(snapshot.warnings).toHaveLength(2);
  });

  it('keeps the external id when an entry is renamed and when it moves to another OU', async () => {
    const before = (await read(config())).users.find((u) => u.email === 'mover@example.test')!;
    await asAdmin((c) => c.modifyDN(`uid=mover,ou=People,${SUFFIX}`, `uid=morgan,ou=People,${SUFFIX}`));
    const renamed = (await read(config())).users.find((u) => u.email === 'mover@example.test')!;
    await asAdmin((c) => c.modifyDN(`uid=morgan,ou=People,${SUFFIX}`, `uid=morgan,ou=Staff,ou=People,${SUFFIX}`));
    // refint rewrites the groups' member values after modifyDN has answered, in the background:
    // until it has, the group names a DN that no longer exists.
    await expect
      .poll(async () => (await read(config())).groups.find((g) => g.name === 'Admins')!.memberExternalIds, { timeout: 10_000, interval: 100 })
      .toContain(before.externalId);
    const after = await read(config());
    const moved = after.users.find((u) => u.email === 'mover@example.test')!;
    expect(renamed.externalId).toBe(before.externalId);
    expect(moved.externalId).toBe(before.externalId);
    expect(moved.dn).toBe('uid=morgan,ou=staff,ou=people,dc=example,dc=test');
    // refint rewrote the member value, and the group still resolves it to the same user.
    expect(after.groups.find((g) => g.name === 'Admins')!.memberExternalIds).toContain(before.externalId);
  });

  it(`reads ${BULK_USERS} users page by page through an account the server caps at 1000 entries per search`, async () => {
    const started = performance.now();
    const pages: number[] = [];
    const source = createDirectorySource(
      resolveConnectionSettings(
        config({ bindDn: `cn=${AD_LIKE.name},${SUFFIX}`, users: { baseDn: `ou=Bulk,${SUFFIX}` }, groups: undefined, pageSize: 1000 }),
        AD_LIKE.password,
      ),
    );
    const snapshot = await source.read({ onProgress: (p) => pages.push(p.users) });
    await source.close();
    const elapsed = performance.now() - started;
    expect(snapshot.users).toHaveLength(BULK_USERS);
    expect(new Set(snapshot.users.map((u) => u.externalId)).size).toBe(BULK_USERS);
    expect(pages).toEqual([1000, 2000, 3000, 4000, 5000]);
    console.info(`read ${BULK_USERS} users in ${elapsed.toFixed(0)} ms`);
  });

  it('fails as a limit, never a partial snapshot, when the server cuts a paged read at its size limit', async () => {
    const error = await readError(
      config({ bindDn: `cn=${CAPPED.name},${SUFFIX}`, users: { baseDn: `ou=Bulk,${SUFFIX}` }, groups: undefined, pageSize: 500 }),
      CAPPED.password,
    );
    expect(error.failure).toBe('limit');
    expect(error.message).toContain('size limit');
  });

  it('refuses a wrong bind password as a bind failure whose message does not contain the password', async () => {
    const wrong = 'wrong-Passw0rd-!';
    const error = await readError(config(), wrong);
    expect(error.failure).toBe('bind');
    expect(error.message).toContain(slapd.adminDn);
    expect(error.message).not.toContain(wrong);
    expect(JSON.stringify(error)).not.toContain(wrong);
  });

  it('fails as interrupted, never a partial snapshot, when the connection is lost in the middle of a paged read', async () => {
    const proxy = await startCuttingProxy({ targetPort: slapd.port, cutAfterBytes: 150_000 });
    try {
      const progress: number[] = [];
      const source = createDirectorySource(
        resolveConnectionSettings(config({ url: proxy.url, users: { baseDn: `ou=Bulk,${SUFFIX}` }, groups: undefined, pageSize: 500 }), slapd.adminPassword),
      );
      const error = await source.read({ onProgress: (p) => progress.push(p.users) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      await source.close();
      expect(error).toBeInstanceOf(DirectoryReadError);
      expect((error as DirectoryReadError).failure).toBe('interrupted');
      expect(progress.length).toBeGreaterThan(0); // pages had arrived before the cut
      expect(progress.at(-1)).toBeLessThan(BULK_USERS);
    } finally {
      await proxy.close();
    }
  });

  it('fails as interrupted when the read is aborted', async () => {
    const controller = new AbortController();
    const source = createDirectorySource(
      resolveConnectionSettings(config({ users: { baseDn: `ou=Bulk,${SUFFIX}` }, groups: undefined, pageSize: 100 }), slapd.adminPassword),
    );
    const error = await source.read({ onProgress: (p) => p.users >= 300 && controller.abort(), signal: controller.signal }).catch((e: unknown) => e);
    await source.close();
    expect(error).toBeInstanceOf(DirectoryReadError);
    expect((error as DirectoryReadError).failure).toBe('interrupted');
  });

  it('reads over LDAPS with the private CA', async () => {
    const snapshot = await read(config({ url: slapd.ldapsUrl!, tls: { ca: slapd.caPem! } }));
    expect(snapshot.users).toHaveLength(6);
  });

  it('reads over StartTLS with the private CA, by IP and by host name', async () => {
    expect((await read(config({ tls: { ca: slapd.caPem!, startTls: true } }))).users).toHaveLength(6);
    const byName = slapd.url.replace('127.0.0.1', 'localhost');
    expect((await read(config({ url: byName, tls: { ca: slapd.caPem!, startTls: true } }))).users).toHaveLength(6);
  });

  it('fails as tls over LDAPS and StartTLS without the CA that signed the certificate', async () => {
    expect((await readError(config({ url: slapd.ldapsUrl! }))).failure).toBe('tls');
    expect((await readError(config({ url: slapd.ldapsUrl!, tls: { ca: slapd.otherCaPem! } }))).failure).toBe('tls');
    const startTls = await readError(config({ tls: { startTls: true, ca: slapd.otherCaPem! } }));
    expect(startTls.failure).toBe('tls');
    expect(startTls.message).toContain('tls.ca');
  });

  it('fails as search when the base DN does not exist', async () => {
    const error = await readError(config({ users: { baseDn: `ou=Nowhere,${SUFFIX}` } }));
    expect(error.failure).toBe('search');
    expect(error.message).toContain('ou=Nowhere');
  });

  it('fails as connect when nothing listens at the URL', async () => {
    const error = await readError(config({ url: 'ldap://127.0.0.1:1' }));
    expect(error.failure).toBe('connect');
  });
});
