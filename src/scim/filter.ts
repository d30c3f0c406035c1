/**
 * SCIM filter text → the engine's `Filter` data, by a small recursive-descent parser over the
 * RFC 7644 §3.4.2.2 grammar: `or` binds looser than `and`, `not` negates a parenthesised filter,
 * and value paths (`emails[type eq "work"]`, and Entra's `emails[type eq "work"].value eq "x"`)
 * become one test on a single value of the attribute (for `emails`, one of the member's addresses:
 * the engine's `{ emails: … }`). Attribute paths are mapped onto engine attributes;
 * unknown attributes, operators and bad syntax are `invalidFilter`.
 *
 * Not scimmy's `Filter`: 1.3.5 drops `and not (…)` after a group (`(a or b) and not (c)` reads as
 * `a or b`), pushes `not` into `(a or b)` without De Morgan, and cannot read `not (not (…))`.
 */
import type { EmailAttribute, Filter, FilterOperator, FilterValue, GroupAttribute, MemberAttribute } from '../membership/index.js';
import { ScimError } from './errors.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER } from './schemas.js';

const OPERATORS = new Set<FilterOperator>(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr']);

/** A parsed attribute path (lower-cased), e.g. ['emails', 'value'] or ['name', 'givenName']. */
type Resolver<A> = (path: string[]) => A | undefined;

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

/**
 * Parses `text` into the engine's filter over the attributes `resolve` knows. `valuePath`, when
 * given, turns the filter of a value path (`emails[type eq "work"].value eq "x"`, its trailing
 * comparison included) into one that tests a single value of the attribute.
 */
function parse<A>(
  text: string,
  resolve: Resolver<A>,
  stripUrns: string[],
  valuePath: (path: string[], inner: Filter<A>) => Filter<A> = (_path, inner) => inner,
): Filter<A> {
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
        return valuePath(path, { and: [inner, comparisonAfter([...path, ...next.text.slice(1).split('.')])] });
      }
      return valuePath(path, inner);
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
  nickname: ['nickName'],
  title: ['title'],
  usertype: ['userType'],
  locale: ['locale'],
  preferredlanguage: ['preferredLanguage'],
  timezone: ['timezone'],
  'name.givenname': ['name', 'givenName'],
  'name.familyname': ['name', 'familyName'],
  'name.middlename': ['name', 'middleName'],
};

const ENTERPRISE_PATHS = ['employeeNumber', 'costCenter', 'organization', 'division', 'department'];

/** What a user filter names: a member attribute, or a sub-attribute of one of the member's addresses. */
type UserTerm = MemberAttribute | { email: EmailAttribute };

const EMAIL_SUB_ATTRIBUTES: Record<string, EmailAttribute> = { value: 'value', type: 'type', primary: 'primary', display: 'display' };

function resolveUser(path: string[]): UserTerm | undefined {
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
      return 'userName';
    case 'displayname':
      return 'displayName';
    case 'name.formatted':
      return 'formattedName';
    case 'externalid':
      return 'externalId';
    case 'active':
      return 'active';
    case 'meta.created':
      return 'createdAt';
    case 'meta.lastmodified':
      return 'updatedAt';
    // RFC 7644 §3.4.2.2: a multi-valued attribute named without a sub-attribute compares its `value`.
    case 'emails':
      return { email: 'value' };
  }
  if (rest[0] === 'emails' && rest.length === 2) {
    const sub = EMAIL_SUB_ATTRIBUTES[rest[1]!];
    return sub ? { email: sub } : undefined;
  }
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

const isEmailTerm = (attribute: UserTerm): attribute is { email: EmailAttribute } => typeof attribute === 'object' && 'email' in attribute;

/** The comparisons of a value path on `emails`, all on one address, as that address's filter. */
function emailFilter(filter: Filter<UserTerm>): Filter<EmailAttribute> {
  if ('always' in filter) return filter;
  if ('and' in filter) return { and: filter.and.map(emailFilter) };
  if ('or' in filter) return { or: filter.or.map(emailFilter) };
  if ('not' in filter) return { not: emailFilter(filter.not) };
  if (!isEmailTerm(filter.attribute)) throw invalid('A value filter on emails compares its sub-attributes');
  return { ...filter, attribute: filter.attribute.email };
}

/**
 * `emails[type eq "work"].value eq "x"` asks for one address that is of type work and is x
 * (RFC 7644 §3.4.2.2); a bare `emails.value eq "x"` or `emails.type eq "work"` for any address
 * that satisfies the one comparison.
 */
function userValuePath(path: string[], inner: Filter<UserTerm>): Filter<UserTerm> {
  const lower = path.map((p) => p.toLowerCase());
  const attribute = lower[0] === CORE_USER.toLowerCase() ? lower.slice(1) : lower;
  if (attribute.length === 1 && attribute[0] === 'emails') return { attribute: { emails: emailFilter(inner) }, op: 'pr' };
  return inner;
}

function toMemberFilter(filter: Filter<UserTerm>): Filter<MemberAttribute> {
  if ('always' in filter) return filter;
  if ('and' in filter) return { and: filter.and.map(toMemberFilter) };
  if ('or' in filter) return { or: filter.or.map(toMemberFilter) };
  if ('not' in filter) return { not: toMemberFilter(filter.not) };
  const { attribute } = filter;
  if (!isEmailTerm(attribute)) return { ...filter, attribute };
  return { attribute: { emails: { ...filter, attribute: attribute.email } }, op: 'pr' };
}

export function parseUserFilter(text: string): Filter<MemberAttribute> {
  return toMemberFilter(parse(text, resolveUser, [CORE_USER, ENTERPRISE_USER], userValuePath));
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
