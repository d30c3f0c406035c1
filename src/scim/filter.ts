/**
 * SCIM filter text → the engine's `Filter` data, by a small recursive-descent parser over the
 * RFC 7644 §3.4.2.2 grammar: `or` binds looser than `and`, `not` negates a parenthesised filter,
 * and value paths (`emails[type eq "work"]`, and Entra's `emails[type eq "work"].value eq "x"`)
 * become conjunctions on sub-attributes. Attribute paths are mapped onto engine attributes;
 * unknown attributes, operators and bad syntax are `invalidFilter`.
 *
 * Not scimmy's `Filter`: 1.3.5 drops `and not (…)` after a group (`(a or b) and not (c)` reads as
 * `a or b`), pushes `not` into `(a or b)` without De Morgan, and cannot read `not (not (…))`.
 */
import type { Filter, FilterOperator, FilterValue, GroupAttribute, MemberAttribute } from '../membership/index.js';
import { ScimError } from './errors.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER } from './schemas.js';

const OPERATORS = new Set<FilterOperator>(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr']);

/** A parsed attribute path (lower-cased), e.g. ['emails', 'value'] or ['name', 'givenName']. */
type Resolver<A> = (path: string[]) => A | undefined;

/** Marks an `emails` type comparison until typeTermsAlwaysTrue replaces it. */
const EMAIL_TYPE = '\u0000emailType';

const invalid = (message: string) => new ScimError(400, 'invalidFilter', message);

/** The longest filter read; the router refuses a longer `filter=` before any parsing. */
export const MAX_FILTER_LENGTH = 2000;

/**
 * How deep parentheses, `not` and value paths may nest. Each `not` becomes a nested SQL expression,
 * and the database's parser stack gives out first: PGlite failed at about 150 levels, which a
 * 2000-character filter reaches. IdPs send one or two levels.
 */
const MAX_FILTER_DEPTH = 32;

/**
 * Brackets, parentheses, a JSON string, or a run of anything else (attribute paths, operators,
 * literals). Each alternative can match a given text in one way only (the string's two inner
 * classes are disjoint), so a failed match costs one scan: never the exponential backtracking of
 * scimmy's lexer, whose string alternatives overlap on `\`.
 */
const TOKEN = /([()[\]])|("(?:[^"\\]|\\.)*")|([^\s()[\]"]+)/y;
const SPACE = /\s*/y;

interface Token {
  /** The bracket or parenthesis itself, 'string' or 'word'. */
  kind: string;
  text: string;
}

/** One pass over `text`: both patterns are sticky, so nothing is sliced or scanned twice. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  for (;;) {
    SPACE.lastIndex = at;
    SPACE.exec(text);
    at = SPACE.lastIndex;
    if (at >= text.length) return tokens;
    TOKEN.lastIndex = at;
    const match = TOKEN.exec(text);
    if (!match) throw invalid(`Unexpected text at ${at + 1}: ${text.slice(at, at + 20)}`);
    if (match[1]) tokens.push({ kind: match[1], text: match[1] });
    else if (match[2]) tokens.push({ kind: 'string', text: match[2] });
    else tokens.push({ kind: 'word', text: match[3]! });
    at = TOKEN.lastIndex;
  }
}

/** Parses `text` into the engine's filter over the attributes `resolve` knows. */
function parse<A>(text: string, resolve: Resolver<A>, stripUrns: string[]): Filter<A> {
  if (text.length > MAX_FILTER_LENGTH) throw invalid(`A filter is at most ${MAX_FILTER_LENGTH} characters`);
  const tokens = tokenize(text);
  let position = 0;
  const peek = () => tokens[position];
  const keyword = (word: string) => {
    const token = peek();
    if (token?.kind !== 'word' || token.text.toLowerCase() !== word) return false;
    position += 1;
    return true;
  };
  const expect = (kind: string) => {
    const token = peek();
    if (token?.kind !== kind) throw invalid(`Expected ${kind} ${token ? `but found ${token.text}` : 'before the end of the filter'}`);
    position += 1;
  };

  /** filter = term *("or" term); inside a value path, attribute paths are relative to `parent`. */
  const filter = (parent: string[] | undefined): Filter<A> => {
    const terms = [term(parent)];
    while (keyword('or')) terms.push(term(parent));
    return terms.length === 1 ? terms[0]! : { or: terms };
  };
  const term = (parent: string[] | undefined): Filter<A> => {
    const factors = [factor(parent)];
    while (keyword('and')) factors.push(factor(parent));
    return factors.length === 1 ? factors[0]! : { and: factors };
  };
  let depth = 0;
  /** A filter inside `(…)`, `not (…)` or `[…]`, at most MAX_FILTER_DEPTH deep. */
  const nested = (parent: string[] | undefined): Filter<A> => {
    if (++depth > MAX_FILTER_DEPTH) throw invalid(`A filter nests at most ${MAX_FILTER_DEPTH} levels deep`);
    const inner = filter(parent);
    depth -= 1;
    return inner;
  };
  const factor = (parent: string[] | undefined): Filter<A> => {
    if (keyword('not')) {
      expect('(');
      const inner = nested(parent);
      expect(')');
      return { not: inner };
    }
    if (peek()?.kind === '(') {
      position += 1;
      const inner = nested(parent);
      expect(')');
      return inner;
    }
    return attributeExpression(parent);
  };
  const attributeExpression = (parent: string[] | undefined): Filter<A> => {
    const token = peek();
    if (token?.kind !== 'word') throw invalid(`Expected an attribute ${token ? `but found ${token.text}` : 'before the end of the filter'}`);
    position += 1;
    const path = parent ? [...parent, ...token.text.split('.')] : stripUrn(token.text, stripUrns);
    if (peek()?.kind === '[') {
      if (parent) throw invalid('A value path cannot hold another');
      position += 1;
      const inner = nested(path);
      expect(']');
      // Entra: `emails[type eq "work"].value eq "x"` narrows, then compares a sub-attribute.
      const next = peek();
      if (next?.kind === 'word' && next.text.startsWith('.')) {
        position += 1;
        return { and: [inner, comparisonAfter([...path, ...next.text.slice(1).split('.')])] };
      }
      return inner;
    }
    return comparisonAfter(path);
  };
  const comparisonAfter = (path: string[]): Filter<A> => {
    const op = peek();
    if (op?.kind !== 'word') throw invalid(`Expected an operator after ${path.join('.')}`);
    position += 1;
    const operator = op.text.toLowerCase() as FilterOperator;
    if (!OPERATORS.has(operator)) throw invalid(`Unknown operator ${op.text}`);
    if (operator === 'pr') return comparison(path, operator, undefined, resolve);
    return comparison(path, operator, literal(operator), resolve);
  };
  const literal = (operator: string): FilterValue => {
    const token = peek();
    if (!token || (token.kind !== 'string' && token.kind !== 'word')) throw invalid(`${operator} needs a value`);
    position += 1;
    if (token.kind === 'string') {
      try {
        return JSON.parse(token.text) as string;
      } catch {
        throw invalid(`Bad string ${token.text}`);
      }
    }
    const word = token.text.toLowerCase();
    if (word === 'true' || word === 'false') return word === 'true';
    if (word === 'null') return null;
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(token.text)) return Number(token.text);
    throw invalid(`${operator} needs a quoted string, a number, true, false or null; found ${token.text}`);
  };

  if (tokens.length === 0) throw invalid('The filter is empty');
  const result = filter(undefined);
  if (position < tokens.length) throw invalid(`Unexpected ${tokens[position]!.text} in the filter`);
  return result;
}

function stripUrn(key: string, urns: string[]): string[] {
  for (const urn of urns) {
    if (key.toLowerCase().startsWith(`${urn.toLowerCase()}:`)) return [urn, ...key.slice(urn.length + 1).split('.')];
  }
  return key.split('.');
}

function comparison<A>(path: string[], operator: FilterOperator, value: FilterValue | undefined, resolve: Resolver<A>): Filter<A> {
  const attribute = resolve(path.map((p) => p.toLowerCase()));
  if (attribute === undefined) throw invalid(`Unknown or unsupported attribute ${path.join('.')}`);
  return operator === 'pr' ? { attribute, op: operator } : { attribute, op: operator, value: value as FilterValue };
}

/** Profile paths a user filter may name, compared case-insensitively. */
const USER_PROFILE_PATHS: Record<string, string[]> = {
  displayname: ['displayName'],
  nickname: ['nickName'],
  title: ['title'],
  usertype: ['userType'],
  locale: ['locale'],
  preferredlanguage: ['preferredLanguage'],
  timezone: ['timezone'],
  'name.givenname': ['name', 'givenName'],
  'name.familyname': ['name', 'familyName'],
  'name.formatted': ['name', 'formatted'],
  'name.middlename': ['name', 'middleName'],
};

const ENTERPRISE_PATHS = ['employeeNumber', 'costCenter', 'organization', 'division', 'department'];

function resolveUser(path: string[]): MemberAttribute | undefined {
  let rest = path;
  if (rest[0] === CORE_USER.toLowerCase()) rest = rest.slice(1);
  if (rest[0] === ENTERPRISE_USER.toLowerCase()) {
    const name = ENTERPRISE_PATHS.find((p) => p.toLowerCase() === rest[1]);
    if (rest[1] === 'manager' && (rest[2] === 'value' || rest.length === 2)) return { profile: [ENTERPRISE_USER, 'manager', 'value'] };
    return name && rest.length === 2 ? { profile: [ENTERPRISE_USER, name] } : undefined;
  }
  const key = rest.join('.');
  switch (key) {
    case 'id':
      return 'id';
    case 'username':
      return 'email';
    case 'externalid':
      return 'externalId';
    case 'active':
      return 'active';
    case 'meta.created':
      return 'createdAt';
    case 'meta.lastmodified':
      return 'updatedAt';
    // Portico keeps one address per member: its email, the userName.
    case 'emails':
    case 'emails.value':
      return 'email';
  }
  // A value filter on emails (emails[type eq "work"].value) narrows to the member's one address.
  if (rest[0] === 'emails' && rest[1] === 'type') return { profile: [EMAIL_TYPE] };
  const profile = USER_PROFILE_PATHS[key];
  return profile ? { profile } : undefined;
}

function resolveGroup(path: string[]): GroupAttribute | undefined {
  let rest = path;
  if (rest[0] === CORE_GROUP.toLowerCase()) rest = rest.slice(1);
  switch (rest.join('.')) {
    case 'id':
      return 'id';
    case 'displayname':
      return 'name';
    case 'externalid':
      return 'externalId';
    case 'members':
    case 'members.value':
      return 'member';
    case 'meta.created':
      return 'createdAt';
    case 'meta.lastmodified':
      return 'updatedAt';
  }
  return undefined;
}

/**
 * `emails[type eq "work"]` narrows a multi-valued attribute Portico holds one value of: a
 * comparison on the type is always true, so `emails[type eq "work"].value eq x` matches by email
 * and `not (emails[type eq "home"])` matches nobody.
 */
function typeTermsAlwaysTrue(filter: Filter<MemberAttribute>): Filter<MemberAttribute> {
  if ('always' in filter) return filter;
  if ('and' in filter) return { and: filter.and.map(typeTermsAlwaysTrue) };
  if ('or' in filter) return { or: filter.or.map(typeTermsAlwaysTrue) };
  if ('not' in filter) return { not: typeTermsAlwaysTrue(filter.not) };
  return typeof filter.attribute === 'object' && filter.attribute.profile[0] === EMAIL_TYPE ? { always: true } : filter;
}

export function parseUserFilter(text: string): Filter<MemberAttribute> {
  return typeTermsAlwaysTrue(parse(text, resolveUser, [CORE_USER, ENTERPRISE_USER]));
}

export function parseGroupFilter(text: string): Filter<GroupAttribute> {
  return parse(text, resolveGroup, [CORE_GROUP]);
}

/** RFC 7643 §2.1 ATTRNAME, and `$ref` (RFC 7643 §2.4), the one sub-attribute name outside it. */
export const ATTRIBUTE_NAME = /^(?:[A-Za-z][\w-]*|\$ref)$/;

/**
 * The `valFilter` of a PATCH value path (RFC 7644 §3.5.2, `emails[type eq "work"]`): comparisons
 * on sub-attributes of one multi-valued attribute, named bare and lower-cased (`type`). Whether
 * the attribute has such sub-attributes is for the caller, which knows the schema.
 */
export function parseValueFilter(text: string): Filter<string> {
  return parse(text, (path) => (path.length === 1 && ATTRIBUTE_NAME.test(path[0]!) ? path[0]! : undefined), []);
}
