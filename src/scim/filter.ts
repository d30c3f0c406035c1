/**
 * SCIM filter text → the engine's `Filter` data. scimmy parses the syntax (into disjunctive
 * normal form); this module checks what its parser lets through (a comparison without a value, a
 * dangling and/or) and maps SCIM attribute paths onto engine attributes. Unknown attributes and
 * operators are `invalidFilter` (RFC 7644 §3.4.2.2).
 */
import SCIMMY from 'scimmy';
import type { Filter, FilterOperator, FilterValue, GroupAttribute, MemberAttribute } from '../membership/index.js';
import { ScimError } from './errors.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER } from './schemas.js';

const OPERATORS = new Set<FilterOperator>(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr']);

/** A parsed attribute path (lower-cased), e.g. ['emails', 'value'] or ['name', 'givenName']. */
type Resolver<A> = (path: string[]) => A | undefined;

const invalid = (message: string) => new ScimError(400, 'invalidFilter', message);

/** Parses `text` into the engine's filter over the attributes `resolve` knows. */
function parse<A>(text: string, resolve: Resolver<A>, stripUrns: string[]): Filter<A> {
  if (text.length > 2000) throw invalid('The filter is too long');
  if (/\b(and|or|not)\s*$/i.test(text.trim())) throw invalid('The filter ends in an operator');
  let expression: unknown;
  try {
    expression = new SCIMMY.Types.Filter(text);
  } catch (error) {
    throw invalid((error as Error).message);
  }
  const branches = (expression as Record<string, unknown>[]).map((branch) => ({
    and: Object.entries(branch).flatMap(([key, value]) => comparisons(stripUrn(key, stripUrns), value, resolve)),
  }));
  return branches.length === 1 ? branches[0]! : { or: branches };
}

function stripUrn(key: string, urns: string[]): string[] {
  for (const urn of urns) {
    if (key.toLowerCase().startsWith(`${urn.toLowerCase()}:`)) return [urn, ...key.slice(urn.length + 1).split('.')];
  }
  return key.split('.');
}

/** One attribute's entry of a scimmy branch: `[op, value]`, `[[op, value], …]`, `['not', op, value]` or a nested object. */
function comparisons<A>(path: string[], entry: unknown, resolve: Resolver<A>): Filter<A>[] {
  if (Array.isArray(entry)) {
    if (entry.length > 0 && Array.isArray(entry[0])) return entry.flatMap((e) => comparisons(path, e, resolve));
    return [comparison(path, entry as unknown[], resolve)];
  }
  if (entry && typeof entry === 'object') {
    return Object.entries(entry).flatMap(([key, value]) => comparisons([...path, key], value, resolve));
  }
  throw invalid('The filter could not be read');
}

function comparison<A>(path: string[], entry: unknown[], resolve: Resolver<A>): Filter<A> {
  const negated = entry[0] === 'not';
  const [op, ...values] = negated ? entry.slice(1) : entry;
  const operator = String(op).toLowerCase() as FilterOperator;
  if (!OPERATORS.has(operator)) throw invalid(`Unknown operator ${String(op)}`);
  if (operator !== 'pr' && values.length === 0) throw invalid(`${operator} needs a value`);
  const attribute = resolve(path.map((p) => p.toLowerCase()));
  if (attribute === undefined) throw invalid(`Unknown or unsupported attribute ${path.join('.')}`);
  const leaf: Filter<A> = { attribute, op: operator, value: values[0] as FilterValue };
  return negated ? { not: leaf } : leaf;
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
  if (rest[0] === 'emails' && rest[1] === 'type') return { profile: ['__emailType'] };
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
 * comparison on the type is dropped (true), so `emails[type eq "work"].value eq x` matches by email.
 */
function dropEmailType(filter: Filter<MemberAttribute>): Filter<MemberAttribute> | undefined {
  if ('and' in filter) {
    const parts = filter.and.map(dropEmailType).filter((f): f is Filter<MemberAttribute> => f !== undefined);
    return parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : { and: parts };
  }
  if ('or' in filter) {
    const parts = filter.or.map(dropEmailType);
    if (parts.some((p) => p === undefined)) return undefined;
    return { or: parts as Filter<MemberAttribute>[] };
  }
  if ('not' in filter) {
    const inner = dropEmailType(filter.not);
    return inner && { not: inner };
  }
  return typeof filter.attribute === 'object' && filter.attribute.profile[0] === '__emailType' ? undefined : filter;
}

export function parseUserFilter(text: string): Filter<MemberAttribute> | undefined {
  return dropEmailType(parse(text, resolveUser, [CORE_USER, ENTERPRISE_USER]));
}

export function parseGroupFilter(text: string): Filter<GroupAttribute> {
  return parse(text, resolveGroup, [CORE_GROUP]);
}
