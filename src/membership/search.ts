/**
 * Filters as data, compiled to SQL. A protocol adapter (SCIM) parses its own filter syntax into
 * a `Filter` over the attributes below; the engine compiles it with drizzle and pages in SQL with
 * a stable order, so no request scans or slices an organization in memory.
 */
import { and, asc, count, eq, exists, gt, gte, isNotNull, isNull, lt, lte, ne, not, or, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import { schema, type Db } from '../db/index.js';
import { InvalidInput } from './errors.js';
import { isId } from './ids.js';
import { renderGroup, type Group } from './groups.js';
import { renderMember, type Member } from './members.js';
import { isStorableDate, isStorableText } from './storable.js';

export type FilterOperator = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le' | 'pr';
export type FilterValue = string | number | boolean | null;

/** Sub-attributes of one of a member's addresses (SCIM `emails`, RFC 7643 §4.1.2). */
export type EmailAttribute = 'value' | 'type' | 'primary' | 'display';

/**
 * Member attributes a filter may name; `profile` paths reach the source-kept profile. `userName`
 * is the provisioning userName, or the email where none was given. `{ emails: f }` holds when one
 * of the member's addresses satisfies `f` (a value path, RFC 7644 §3.4.2.2: every comparison of
 * `f` on the same address); a member without stored addresses has one, its email, of type work
 * and primary. Its operator is `pr`. `displayName` and `formattedName` (SCIM `name.formatted`)
 * are the profile's, or the member's name where the profile holds no name.
 */
export type MemberAttribute =
  | 'id'
  | 'email'
  | 'userName'
  | 'displayName'
  | 'formattedName'
  | { emails: Filter<EmailAttribute> }
  | 'externalId'
  | 'active'
  | 'createdAt'
  | 'updatedAt'
  | { profile: string[] };

export type GroupAttribute = 'id' | 'name' | 'externalId' | 'member' | 'createdAt' | 'updatedAt';

export type Filter<A> =
  | { always: boolean }
  | { and: Filter<A>[] }
  | { or: Filter<A>[] }
  | { not: Filter<A> }
  | { attribute: A; op: FilterOperator; value?: FilterValue };

/** Raised for a filter the engine cannot answer; SCIM renders it as `invalidFilter`. */
export class FilterInvalid extends InvalidInput {
  constructor(message: string) {
    super(message);
  }
  override readonly code = 'filter.invalid';
}

export interface Page {
  /** 0-based offset. */
  offset: number;
  limit: number;
}

export interface SearchResult<T> {
  total: number;
  items: T[];
}

const escapeLike = (value: string) => value.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Compiles one comparison on a text expression; `caseExact` false compares lower-cased. */
function compareText(column: SQL, op: FilterOperator, value: FilterValue | undefined, caseExact: boolean): SQL {
  if (op === 'pr') return and(isNotNull(column), ne(column, sql`''`))!;
  if (value === null) {
    if (op === 'eq') return isNull(column);
    if (op === 'ne') return isNotNull(column);
    throw new FilterInvalid(`${op} does not take null`);
  }
  if (typeof value !== 'string') throw new FilterInvalid(`${op} needs a string value here`);
  if (!isStorableText(value)) throw new FilterInvalid('A filter value must not hold NUL or an unpaired surrogate');
  const left = caseExact ? column : sql`lower(${column})`;
  const right = caseExact ? value : value.toLowerCase();
  switch (op) {
    case 'eq':
      return eq(left, right);
    case 'ne':
      return sql`(${column} is null or ${ne(left, right)})`;
    case 'co':
      return sql`${left} like ${`%${escapeLike(right)}%`}`;
    case 'sw':
      return sql`${left} like ${`${escapeLike(right)}%`}`;
    case 'ew':
      return sql`${left} like ${`%${escapeLike(right)}`}`;
    case 'gt':
      return gt(left, right);
    case 'ge':
      return gte(left, right);
    case 'lt':
      return lt(left, right);
    case 'le':
      return lte(left, right);
  }
}

function compareDate(column: AnyPgColumn, op: FilterOperator, value: FilterValue | undefined): SQL {
  if (op === 'pr') return isNotNull(column);
  const date = typeof value === 'string' ? new Date(value) : undefined;
  if (!date || !isStorableDate(date)) throw new FilterInvalid('A date attribute needs an ISO 8601 date value in the years 0001 to 9999');
  const ops = { eq, ne, gt, ge: gte, lt, le: lte } as const;
  if (!(op in ops)) throw new FilterInvalid(`${op} does not apply to dates`);
  return ops[op as keyof typeof ops](column, date);
}

function compareId(column: AnyPgColumn, op: FilterOperator, value: FilterValue | undefined): SQL {
  if (op === 'pr') return sql`true`;
  if (op !== 'eq' && op !== 'ne') throw new FilterInvalid(`${op} does not apply to id`);
  if (typeof value !== 'string') throw new FilterInvalid('id needs a string value');
  // An id that cannot exist matches nothing (eq) or everything (ne), without a query error.
  if (!isId(value)) return op === 'eq' ? sql`false` : sql`true`;
  return op === 'eq' ? eq(column, value) : ne(column, value);
}

function asBoolean(value: FilterValue | undefined): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  throw new FilterInvalid('A boolean attribute needs true or false');
}

function compileTree<A>(filter: Filter<A>, leaf: (attribute: A, op: FilterOperator, value: FilterValue | undefined) => SQL): SQL {
  if ('always' in filter) return filter.always ? sql`true` : sql`false`;
  if ('and' in filter) return and(...filter.and.map((f) => compileTree(f, leaf)))!;
  if ('or' in filter) return or(...filter.or.map((f) => compileTree(f, leaf)))!;
  // RFC 7644 §3.4.2.2: a comparison on an unassigned attribute is false, so its `not` is true. SQL
  // would make both unknown (NOT NULL is NULL) and drop the row.
  if ('not' in filter) return not(sql`coalesce(${compileTree(filter.not, leaf)}, false)`);
  return leaf(filter.attribute, filter.op, filter.value);
}

const m = schema.members;
const g = schema.groups;

/**
 * The member's addresses as a jsonb array: the stored SCIM `emails`, or else its email as the one
 * work and primary address. `members_scim_emails_idx` indexes the lower-cased stored ones.
 */
const memberEmails = sql`(case when jsonb_typeof(${m.profile} -> 'emails') = 'array' and jsonb_array_length(${m.profile} -> 'emails') > 0
  then ${m.profile} -> 'emails'
  else jsonb_build_array(jsonb_build_object('value', ${m.email}, 'type', 'work', 'primary', true)) end)`;

/** One address of `memberEmails`, named `scim_email` in the subquery below. */
function emailLeaf(attribute: EmailAttribute, op: FilterOperator, value: FilterValue | undefined): SQL {
  if (attribute === 'primary') {
    const primary = sql`coalesce((scim_email ->> 'primary') = 'true', false)`;
    if (op === 'pr') return primary;
    if (op !== 'eq' && op !== 'ne') throw new FilterInvalid(`${op} does not apply to primary`);
    return asBoolean(value) === (op === 'eq') ? primary : not(primary);
  }
  return compareText(sql`(scim_email ->> ${attribute})`, op, value, false);
}

/** The address values an email filter requires equal (its `value eq` terms joined by and), lower-cased. */
function requiredAddresses(filter: Filter<EmailAttribute>): string[] {
  if ('and' in filter) return filter.and.flatMap(requiredAddresses);
  if ('attribute' in filter && filter.attribute === 'value' && filter.op === 'eq' && typeof filter.value === 'string') {
    return [filter.value.toLowerCase()];
  }
  return [];
}

function emailsPredicate(filter: Filter<EmailAttribute>): SQL {
  const some = sql`exists (select 1 from jsonb_array_elements(${memberEmails}) as scim_email where ${compileTree(filter, emailLeaf)})`;
  const [address] = requiredAddresses(filter);
  if (address === undefined || !isStorableText(address)) return some;
  // The lookup IdPs make (`emails[type eq "work"].value eq "x"`): a condition the indexes answer
  // (members_org_email_key, members_scim_emails_idx) that every match meets, before the exact test.
  const indexed = sql`(lower(${m.email}) = ${address} or lower((${m.profile} -> 'emails')::text)::jsonb @> ${JSON.stringify([{ value: address }])}::jsonb)`;
  return and(indexed, some)!;
}

function memberLeaf(attribute: MemberAttribute, op: FilterOperator, value: FilterValue | undefined): SQL {
  if (typeof attribute === 'object' && 'emails' in attribute) {
    if (op !== 'pr') throw new FilterInvalid('An emails filter takes pr');
    return emailsPredicate(attribute.emails);
  }
  if (typeof attribute === 'object') {
    const path = `{${attribute.profile.map((p) => p.replace(/[{},"\\]/g, '')).join(',')}}`;
    return compareText(sql`(${m.profile} #>> ${path})`, op, value, false);
  }
  switch (attribute) {
    case 'id':
      return compareId(m.id, op, value);
    case 'email':
      // Matches the expression of the unique index members_org_email_key, so `eq` is an index lookup.
      return compareText(sql`${m.email}`, op, value, false);
    case 'userName':
      // The expression of the unique index members_org_user_name_key.
      return compareText(sql`coalesce(${m.userName}, ${m.email})`, op, value, false);
    // A member whose profile holds no name shows its name as both (src/scim/resources.ts, userDefaults).
    case 'displayName':
      return compareText(sql`coalesce(${m.profile} ->> 'displayName', case when ${m.profile} ? 'name' then null else ${m.name} end)`, op, value, false);
    case 'formattedName':
      return compareText(
        sql`coalesce(${m.profile} #>> '{name,formatted}', case when ${m.profile} ? 'name' or ${m.profile} ? 'displayName' then null else ${m.name} end)`,
        op,
        value,
        false,
      );
    case 'externalId':
      return compareText(sql`${m.externalId}`, op, value, true);
    case 'active': {
      if (op === 'pr') return sql`true`;
      if (op !== 'eq' && op !== 'ne') throw new FilterInvalid(`${op} does not apply to active`);
      const active = asBoolean(value) === (op === 'eq');
      return active ? ne(m.status, 'revoked') : eq(m.status, 'revoked');
    }
    case 'createdAt':
      return compareDate(m.createdAt, op, value);
    case 'updatedAt':
      return compareDate(m.updatedAt, op, value);
  }
}

/** Members of one organization matching `filter`, in creation order: one page, the total and, if asked, their groups. */
export async function searchMembers(
  db: Db,
  organizationId: string,
  filter: Filter<MemberAttribute> | undefined,
  page: Page,
  options: { withGroups?: boolean } = {},
): Promise<SearchResult<Member> & { groups: Map<string, { id: string; name: string }[]> }> {
  const where = and(eq(m.organizationId, organizationId), filter ? compileTree(filter, memberLeaf) : undefined);
  if (page.limit <= 0) return { total: await countWhere(db, m, where), items: [], groups: new Map() };
  // On a first page (a lookup, above all) each member's groups come in the same query: with no
  // offset, the subquery runs only for the rows returned. Deeper pages read groups for their rows after.
  const groupsInline = options.withGroups === true && page.offset === 0;
  const rows = await db
    .select({ member: m, groups: groupsInline ? groupsOfMemberColumn : sql<null>`null` })
    .from(m)
    .where(where)
    .orderBy(asc(m.createdAt), asc(m.id))
    .offset(page.offset)
    .limit(page.limit);
  const members = rows.map((r) => r.member);
  // A short page ends the result, so it tells the total itself (a lookup never counts); only a full
  // page, or an empty one past the start, needs a count.
  const [total, groups] = await Promise.all([
    endsResult(rows.length, page) ? page.offset + rows.length : countWhere(db, m, where),
    groupsInline
      ? new Map(rows.map((r) => [r.member.id, r.groups ?? []]))
      : options.withGroups
        ? groupsOfMembers(db, organizationId, members.map((r) => r.id))
        : new Map<string, { id: string; name: string }[]>(),
  ]);
  return { total, items: members.map(renderMember), groups };
}

/**
 * A member's groups as JSON, for a select from members. Its columns are written out qualified:
 * drizzle writes a single-table select's own columns bare, and a bare "id" would bind to groups.id.
 */
const groupsOfMemberColumn = sql<{ id: string; name: string }[]>`coalesce((
  select json_agg(json_build_object('id', g.id, 'name', g.name) order by g.name)
  from group_members gm join groups g on g.id = gm.group_id
  where gm.member_id = "members"."id"), '[]'::json)`;

/** Whether a page of `found` rows is the end of its result: short, or empty from the very start. */
const endsResult = (found: number, page: Page) => (found > 0 && found < page.limit) || (found === 0 && page.offset === 0);

async function countWhere(db: Db, table: typeof schema.members | typeof schema.groups, where: SQL | undefined) {
  const [row] = await db.select({ n: count() }).from(table).where(where);
  return row?.n ?? 0;
}


function groupLeaf(attribute: GroupAttribute, op: FilterOperator, value: FilterValue | undefined): SQL {
  switch (attribute) {
    case 'id':
      return compareId(g.id, op, value);
    case 'name':
      return compareText(sql`${g.name}`, op, value, false);
    case 'externalId':
      return compareText(sql`${g.externalId}`, op, value, true);
    case 'member': {
      const gm = schema.groupMembers;
      const members = (condition: SQL | undefined) =>
        exists(
          sql`(select 1 from ${gm} where ${and(eq(gm.groupId, g.id), condition)})`,
        );
      if (op === 'pr') return members(undefined);
      if (op !== 'eq' || typeof value !== 'string') throw new FilterInvalid('members.value supports eq with an id');
      return isId(value) ? members(eq(gm.memberId, value)) : sql`false`;
    }
    case 'createdAt':
      return compareDate(g.createdAt, op, value);
    case 'updatedAt':
      return compareDate(g.updatedAt, op, value);
  }
}

/** A group without its members and collection access, as lists show it. */
export type GroupSummary = Omit<Group, 'members' | 'collections'>;

/** Groups of one organization matching `filter`, in creation order, one page and the total. */
export async function searchGroups(
  db: Db,
  organizationId: string,
  filter: Filter<GroupAttribute> | undefined,
  page: Page,
): Promise<SearchResult<GroupSummary>> {
  const where = and(eq(g.organizationId, organizationId), filter ? compileTree(filter, groupLeaf) : undefined);
  if (page.limit <= 0) return { total: await countWhere(db, g, where), items: [] };
  const rows = await db
    .select()
    .from(g)
    .where(where)
    .orderBy(asc(g.createdAt), asc(g.id))
    .offset(page.offset)
    .limit(page.limit);
  const total = endsResult(rows.length, page) ? page.offset + rows.length : await countWhere(db, g, where);
  return { total, items: rows.map(renderGroup) };
}

/** The members (id and email) of each of `groupIds`, for rendering a page of groups at once. */
export async function membersOfGroups(db: Db, organizationId: string, groupIds: string[]) {
  if (groupIds.length === 0) return new Map<string, { id: string; email: string }[]>();
  const gm = schema.groupMembers;
  const rows = await db
    .select({ groupId: gm.groupId, id: m.id, email: m.email })
    .from(gm)
    .innerJoin(m, eq(m.id, gm.memberId))
    .where(and(eq(gm.organizationId, organizationId), sql`${gm.groupId} in ${groupIds}`))
    .orderBy(asc(m.createdAt), asc(m.id));
  const byGroup = new Map<string, { id: string; email: string }[]>();
  for (const row of rows) {
    const list = byGroup.get(row.groupId) ?? [];
    list.push({ id: row.id, email: row.email });
    byGroup.set(row.groupId, list);
  }
  return byGroup;
}

/** The groups (id and name) of each of `memberIds`. */
export async function groupsOfMembers(db: Db, organizationId: string, memberIds: string[]) {
  if (memberIds.length === 0) return new Map<string, { id: string; name: string }[]>();
  const gm = schema.groupMembers;
  const rows = await db
    .select({ memberId: gm.memberId, id: g.id, name: g.name })
    .from(gm)
    .innerJoin(g, eq(g.id, gm.groupId))
    .where(and(eq(gm.organizationId, organizationId), sql`${gm.memberId} in ${memberIds}`));
  const byMember = new Map<string, { id: string; name: string }[]>();
  for (const row of rows) {
    const list = byMember.get(row.memberId) ?? [];
    list.push({ id: row.id, name: row.name });
    byMember.set(row.memberId, list);
  }
  return byMember;
}
