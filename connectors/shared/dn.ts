/**
 * DN normalisation (RFC 4514): OpenLDAP keeps `member` values as written, so `CN=Alice , OU=People`
 * and `cn=alice,ou=people` name one entry (directory-notes.md, "Membership"). Matching compares the
 * normal form: attribute types and values case-folded, unescaped spaces around `=`, `,` and `+`
 * trimmed, escapes decoded and re-encoded one way, multi-valued RDNs sorted.
 */

type Rdn = [type: string, value: string][];

const HEX_PAIR = /^[0-9a-fA-F]{2}$/;
const ATTRIBUTE_TYPE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)$/;

/** Parses a DN into RDNs of (type, value); null when it is not a DN. */
export function parseDn(dn: string): Rdn[] | null {
  const rdns: Rdn[] = [];
  let rdn: Rdn = [];
  let i = 0;
  const n = dn.length;
  const skipSpaces = () => {
    while (i < n && dn[i] === ' ') i++;
  };
  skipSpaces();
  if (i === n) return [];
  while (i < n) {
    skipSpaces();
    const typeStart = i;
    while (i < n && dn[i] !== '=') i++;
    if (i === n) return null;
    const type = dn.slice(typeStart, i).trim();
    if (!ATTRIBUTE_TYPE.test(type)) return null;
    i++; // '='
    skipSpaces();
    // The value, as bytes, so escaped UTF-8 (`\C3\A9`) decodes to one character.
    const bytes: number[] = [];
    let lastSignificant = 0; // bytes up to here are kept: trailing unescaped spaces are not
    if (dn[i] === '"') {
      i++;
      while (i < n && dn[i] !== '"') {
        if (dn[i] === '\\' && i + 1 < n) i++;
        bytes.push(...Buffer.from(dn[i]!, 'utf8'));
        i++;
      }
      if (i === n) return null;
      i++;
      lastSignificant = bytes.length;
      skipSpaces();
    } else {
      while (i < n && dn[i] !== ',' && dn[i] !== ';' && dn[i] !== '+') {
        const ch = dn[i]!;
        if (ch === '\\') {
          const pair = dn.slice(i + 1, i + 3);
          if (HEX_PAIR.test(pair)) {
            bytes.push(parseInt(pair, 16));
            i += 3;
          } else if (i + 1 < n) {
            bytes.push(...Buffer.from(dn[i + 1]!, 'utf8'));
            i += 2;
          } else {
            return null;
          }
          lastSignificant = bytes.length;
          continue;
        }
        const code = dn.codePointAt(i)!;
        const char = String.fromCodePoint(code);
        bytes.push(...Buffer.from(char, 'utf8'));
        if (char !== ' ') lastSignificant = bytes.length;
        i += char.length;
      }
    }
    rdn.push([type, Buffer.from(bytes.slice(0, lastSignificant)).toString('utf8')]);
    if (i < n && dn[i] === '+') {
      i++;
      continue;
    }
    rdns.push(rdn);
    rdn = [];
    if (i < n) {
      i++; // ',' or ';'
      skipSpaces();
      if (i === n) return null; // a trailing separator
    }
  }
  if (rdn.length) rdns.push(rdn);
  return rdns;
}

function escapeValue(value: string): string {
  let escaped = value.replace(/[,+"\\<>;=]/g, (c) => `\\${c}`);
  if (escaped.startsWith(' ') || escaped.startsWith('#')) escaped = `\\${escaped}`;
  if (escaped.endsWith(' ') && escaped.length > 1) escaped = `${escaped.slice(0, -1)}\\ `;
  return escaped;
}

/** The normal form of a DN for matching; null when the string is not a DN. */
export function normalizeDn(dn: string): string | null {
  return normalizePlainDn(dn) ?? normalizeDnFully(dn);
}

/** `normalizeDn` through the full RFC 4514 parser, for every DN; the reference the fast path must match. */
export function normalizeDnFully(dn: string): string | null {
  const rdns = parseDn(dn);
  if (rdns === null) return null;
  return rdns
    .map((rdn) =>
      rdn
        .map(([type, value]) => `${type.toLowerCase()}=${escapeValue(value.normalize('NFC').toLowerCase())}`)
        .sort()
        .join('+'),
    )
    .join(',');
}

/**
 * The fast path of `normalizeDn` for the common, plain DN (`uid=Alice , ou=People,dc=example`):
 * printable ASCII only, no `\`, `"`, `+`, `;`, `<`, `>`, exactly one `=` per RDN, no value starting
 * with `#`. There the full parser decodes nothing, sorts nothing and escapes nothing, so the normal
 * form is each type trimmed and each value stripped of unescaped spaces, both lower-cased.
 * Undefined whenever the DN is anything else (including anything invalid): the full parser decides.
 */
export function normalizePlainDn(dn: string): string | undefined {
  const n = dn.length;
  if (n === 0) return undefined;
  /** No upper-case letter and no space: when the RDNs check out, the DN is its own normal form. */
  let normal = true;
  for (let i = 0; i < n; i++) {
    const code = dn.charCodeAt(i);
    // Printable ASCII, minus " (22) + (2b) ; (3b) < (3c) > (3e) \ (5c).
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x2b || code === 0x3b || code === 0x3c || code === 0x3e || code === 0x5c) {
      return undefined;
    }
    if (code === 0x20 || (code >= 0x41 && code <= 0x5a)) normal = false;
  }
  let out = normal ? undefined : '';
  let start = 0;
  while (start <= n) {
    let end = dn.indexOf(',', start);
    if (end === -1) end = n;
    const eq = dn.indexOf('=', start);
    if (eq === -1 || eq >= end) return undefined; // no `=` in this RDN (or an empty RDN)
    const second = dn.indexOf('=', eq + 1);
    if (second !== -1 && second < end) return undefined; // an `=` inside the value: escaped on output
    const type = dn.slice(start, eq).trim();
    if (!ATTRIBUTE_TYPE.test(type)) return undefined;
    let valueStart = eq + 1;
    let valueEnd = end;
    while (valueStart < valueEnd && dn.charCodeAt(valueStart) === 0x20) valueStart++;
    while (valueEnd > valueStart && dn.charCodeAt(valueEnd - 1) === 0x20) valueEnd--;
    if (valueStart < valueEnd && dn.charCodeAt(valueStart) === 0x23 /* # */) return undefined;
    if (out !== undefined) {
      if (start > 0) out += ',';
      out += type.toLowerCase() + '=' + dn.slice(valueStart, valueEnd).toLowerCase();
    }
    start = end + 1;
  }
  return out ?? dn;
}

/**
 * `normalizeDn` remembering its answers, for one read: member DNs repeat the DNs of users read
 * before. Holds at most `limit` answers; past that it starts over (it is a cache, not a registry).
 */
export function cachedDnNormalizer(limit = 1 << 18): (dn: string) => string | null {
  let cache = new Map<string, string | null>();
  return (dn) => {
    const known = cache.get(dn);
    if (known !== undefined) return known;
    const normal = normalizeDn(dn);
    if (cache.size >= limit) cache = new Map();
    cache.set(dn, normal);
    return normal;
  };
}

/** The value of the first RDN (`cn=Admins,ou=Groups` → `Admins`), as written; null for an empty DN. */
export function firstRdnValue(dn: string): string | null {
  return parseDn(dn)?.[0]?.[0]?.[1] ?? null;
}
