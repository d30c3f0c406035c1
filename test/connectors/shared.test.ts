/** The pure translation units of the connectors: DNs, GUIDs, range retrieval (over a fake search) and error kinds. */
import { InvalidCredentialsError, NoSuchObjectError, SizeLimitExceededError, TimeLimitExceededError, type Entry } from 'ldapts';
import { describe, expect, it } from 'vitest';
import { cachedDnNormalizer, firstRdnValue, normalizeDn, normalizeDnFully, normalizePlainDn } from '../../connectors/shared/dn.js';
import { externalIdOf } from '../../connectors/shared/entries.js';
import { toReadError } from '../../connectors/shared/errors.js';
import { formatGuid } from '../../connectors/shared/guid.js';
import { RangeRetrievalFailed, readAllRanges } from '../../connectors/shared/range.js';

describe('normalizeDn', () => {
  it('folds case and trims spaces around = , and +', () => {
    expect(normalizeDn('UID=Alice , OU=People,DC=Example, DC=Test')).toBe('uid=alice,ou=people,dc=example,dc=test');
    expect(normalizeDn(' cn = Bob Baker ,ou=People')).toBe('cn=bob baker,ou=people');
  });

  it('decodes escapes one way: hex pairs, escaped specials and quoted values name the same entry', () => {
    const plain = normalizeDn('cn=Smith\\, John,ou=People');
    expect(normalizeDn('cn=Smith\\2C John,ou=People')).toBe(plain);
    expect(normalizeDn('cn="Smith, John",ou=People')).toBe(plain);
    expect(normalizeDn('cn=J\\C3\\A9r\\C3\\B4me,ou=People')).toBe(normalizeDn('CN=JÉRÔME,OU=People'));
  });

  it('sorts the parts of a multi-valued RDN and keeps escaped trailing spaces', () => {
    expect(normalizeDn('uid=a+CN=B,dc=x')).toBe(normalizeDn('cn=b + uid=A,dc=x'));
    expect(normalizeDn('cn=x\\ ,dc=x')).not.toBe(normalizeDn('cn=x,dc=x'));
  });

  it('answers null for what is not a DN', () => {
    expect(normalizeDn('not a dn')).toBeNull();
    expect(normalizeDn('cn=a,')).toBeNull();
    expect(normalizeDn('cn="open,dc=x')).toBeNull();
    expect(firstRdnValue('CN=Domain Admins,CN=Users,DC=corp')).toBe('Domain Admins');
  });
});

describe('normalizeDn fast path', () => {
  /** Plain DNs the fast path answers itself. */
  const plain = [
    'uid=alice,ou=people,dc=example,dc=test',
    'UID=Alice , OU=People,DC=Example, DC=Test',
    ' cn = Bob Baker ,ou=People',
    '  CN=Domain Admins,CN=Users,DC=corp,DC=example  ',
    'cn=  leading and trailing  ,dc=x',
    'cn =   spaced   value? yes  ,  dc = x',
    '2.5.4.3=Alice,0.9.2342.19200300.100.1.25=Example',
    'cn=room#5,dc=x',
    'cn=a-b_c.d@e(f)!~*%,dc=x',
    'cn=,dc=x',
    'cn=   ,dc=x',
    'cn=x',
    'cn=MiXeD CaSe VaLuE,O=ACME Corp',
    'cn-2=x,a1=y',
  ];
  /** DNs with anything the fast path leaves to the full parser; invalid ones among them. */
  const awkward = [
    'cn=Smith\\, John,ou=People',
    'cn=Smith\\2C John,ou=People',
    'cn=Smith\\2c John,ou=People',
    'cn="Smith, John",ou=People',
    'cn = "Smith, John" , ou=People',
    'cn="quoted \\"inner\\" value",dc=x',
    'cn=J\\C3\\A9r\\C3\\B4me,ou=People',
    'CN=JÉRÔME,OU=People',
    'cn=Jérôme,ou=Péople',
    'cn=Ｆｕｌｌ Ｗｉｄｔｈ,dc=x',
    'cn=e\u0301,dc=x',
    'cn=\u00e9,dc=x',
    'cn=ΣΊΣΥΦΟΣ,dc=x',
    'cn=🙂 smile,dc=x',
    'uid=a+CN=B,dc=x',
    'cn=b + uid=A,dc=x',
    'cn=B+uid=a+sn=C,dc=x',
    'cn=x\\ ,dc=x',
    'cn=\\ x,dc=x',
    'cn=\\20x\\20,dc=x',
    'cn=#04024869,dc=x',
    'cn= #04024869 ,dc=x',
    'cn=\\#04024869,dc=x',
    'cn=#ABCD,DC=X',
    'cn=a=b,dc=x',
    'cn = spaced  =value? no',
    'cn=a\\=b,dc=x',
    'cn=a<b>c,dc=x',
    'cn=a;b,dc=x',
    'cn=a;dc=x',
    'cn=a\\;b,dc=x',
    'cn=a\\+b,dc=x',
    'cn=back\\\\slash,dc=x',
    'cn=tab\there,dc=x',
    'cn\t=tab,dc=x',
    'cn=a,dc=x,',
    'cn=a, ',
    'cn=a,,dc=x',
    ',cn=a',
    'not a dn',
    'cn',
    '=x',
    '1cn=x',
    'c n=x',
    'cn,x=1',
    'cn=a,b,c=d',
    'cn="open,dc=x',
    'cn=trailing\\',
    '',
    '   ',
    '2.5.4.3=\\41lice+0.9.2342.19200300.100.1.1=X',
    'OID.2.5.4.3=x',
  ];

  it('gives exactly the output of the full parser on plain DNs, and answers them itself', () => {
    for (const dn of plain) {
      expect(normalizePlainDn(dn), dn).toBeDefined();
      expect(normalizePlainDn(dn), dn).toBe(normalizeDnFully(dn));
      expect(normalizeDn(dn), dn).toBe(normalizeDnFully(dn));
    }
    expect(normalizePlainDn('UID=Alice , OU=People,DC=Example, DC=Test')).toBe('uid=alice,ou=people,dc=example,dc=test');
    expect(normalizePlainDn('2.5.4.3=Alice')).toBe('2.5.4.3=alice');
  });

  it('leaves escapes, quotes, multi-valued RDNs, Unicode, hex values and invalid DNs to the full parser, unchanged', () => {
    for (const dn of awkward) {
      const fast = normalizePlainDn(dn);
      // When the fast path answers at all, it answers what the full parser does.
      if (fast !== undefined) expect(fast, dn).toBe(normalizeDnFully(dn));
      expect(normalizeDn(dn), dn).toBe(normalizeDnFully(dn));
    }
    for (const dn of ['cn=Smith\\, John', 'cn="x"', 'cn=a+sn=b', 'cn=é', 'cn=#04', 'cn=a=b', 'cn=a;dc=x', 'not a dn', 'cn=a,', '', 'cn=a<b']) {
      expect(normalizePlainDn(dn), dn).toBeUndefined();
    }
  });

  it('matches the full parser on generated variants of case and spacing', () => {
    const variants = (dn: string) => [dn, dn.toUpperCase(), dn.replace(/=/g, ' = '), dn.replace(/,/g, ' , '), ` ${dn} `, dn.replace(/,/g, ',  ')];
    for (const dn of [...plain, ...awkward].flatMap(variants)) expect(normalizeDn(dn), dn).toBe(normalizeDnFully(dn));
  });

  it('caches answers per normaliser, null ones included, and stays correct past its limit', () => {
    const normalize = cachedDnNormalizer(3);
    for (let round = 0; round < 3; round++) {
      for (const dn of [...plain, ...awkward]) expect(normalize(dn), dn).toBe(normalizeDnFully(dn));
    }
    expect(normalize('not a dn')).toBeNull();
    expect(normalize('not a dn')).toBeNull();
  });
});

describe('external ids', () => {
  it('prints objectGUID with the first three fields little-endian', () => {
    const bytes = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    expect(formatGuid(bytes)).toBe('33221100-5544-7766-8899-aabbccddeeff');
    expect(formatGuid(Buffer.alloc(15))).toBeNull();
  });

  it('never reads a GUID that arrived as a string (UTF-8 decoding corrupts it)', () => {
    const entry = { dn: 'cn=x', objectGUID: 'garbled' } as Entry;
    expect(externalIdOf(entry, 'objectGUID', 'guid')).toBeNull();
    expect(externalIdOf({ dn: 'cn=x', objectguid: Buffer.alloc(16, 1) } as Entry, 'objectGUID', 'guid')).toBe('01010101-0101-0101-0101-010101010101');
  });
});

describe('AD range retrieval', () => {
  const members = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `cn=u${from + i},dc=corp`);

  /** A fake of one base-scope search: the server's ranges of 1500 over `total` values. */
  function fakeServer(total: number) {
    const requests: string[][] = [];
    const readEntry = async (dn: string, attributes: string[]) => {
      requests.push(attributes);
      const start = Number(/range=(\d+)-\*/.exec(attributes[0]!)![1]);
      const end = Math.min(start + 1499, total - 1);
      const key = end === total - 1 ? `member;range=${start}-*` : `member;range=${start}-${end}`;
      return { dn, [key]: members(start, end) } as Entry;
    };
    return { readEntry, requests };
  }

  it('loops member;range=<next>-* until the key ends in -*, keeping every value', async () => {
    const server = fakeServer(4000);
    const entry = { dn: 'cn=big,dc=corp', 'member;range=0-1499': members(0, 1499) } as Entry;
    const all = await readAllRanges({ entry, attribute: 'member', readEntry: server.readEntry });
    expect(all).toHaveLength(4000);
    expect(new Set(all).size).toBe(4000);
    expect(server.requests).toEqual([['member;range=1500-*'], ['member;range=3000-*']]);
  });

  it('answers null when the entry carries the whole attribute, and fails when a range is missing', async () => {
    expect(await readAllRanges({ entry: { dn: 'cn=s', member: members(0, 2) } as Entry, attribute: 'member', readEntry: async () => undefined })).toBeNull();
    const entry = { dn: 'cn=big', 'member;range=0-1499': members(0, 1499) } as Entry;
    await expect(readAllRanges({ entry, attribute: 'member', readEntry: async (dn) => ({ dn }) as Entry })).rejects.toBeInstanceOf(RangeRetrievalFailed);
  });
});

describe('read errors', () => {
  const context = { url: 'ldap://dc.test', bindDn: 'cn=reader', bindPassword: 'hunter2-secret' };

  it('names the failure by the LDAP result code', () => {
    expect(toReadError(new InvalidCredentialsError('bad'), { ...context, phase: 'bind' }).failure).toBe('bind');
    expect(toReadError(new SizeLimitExceededError('x'), { ...context, phase: 'read' }).failure).toBe('limit');
    expect(toReadError(new TimeLimitExceededError('x'), { ...context, phase: 'read' }).failure).toBe('limit');
    expect(toReadError(new NoSuchObjectError('x'), { ...context, phase: 'read' }).failure).toBe('search');
  });

  it('treats a connection lost during the read as interrupted and keeps the password out of every message', () => {
    const lost = toReadError(new Error('Connection closed before message response was received. hunter2-secret'), { ...context, phase: 'read' });
    expect(lost.failure).toBe('interrupted');
    expect(lost.message).not.toContain('hunter2-secret');
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(toReadError(reset, { ...context, phase: 'read' }).failure).toBe('interrupted');
  });
});

describe('connectors only read', () => {
  it('never call an ldapts write operation', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const root = new URL('../../connectors/', import.meta.url);
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      const text = readFileSync(new URL(file, root), 'utf8');
      expect(text, file).not.toMatch(/\bclient\??\.(add|modify|modifyDN|del|exop|compare)\(/);
    }
  });
});
