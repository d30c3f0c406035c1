/**
 * The event log. Every change writes its event in the transaction of the change; queries answer
 * a date range newest first, in pages of 50 with a continuation token.
 */
import { and, desc, eq, gte, lt, lte, or, type SQL } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Actor } from './actor.js';
import { newId, type Tx } from './context.js';
import { InvalidInput } from './errors.js';
import { isStorableDate } from './storable.js';

/** Event types with the reference platform's codes (null where it has none). */
export const EVENT_CODES = {
  'collection.created': 1300,
  'collection.updated': 1301,
  'collection.deleted': 1302,
  'group.created': 1400,
  'group.updated': 1401,
  'group.deleted': 1402,
  'member.invited': 1500,
  'member.confirmed': 1501,
  'member.updated': 1502,
  'member.removed': 1503,
  'member.groupsUpdated': 1504,
  'member.firstSsoLogin': 1510,
  'member.revoked': 1511,
  'member.restored': 1512,
  'member.accepted': null,
  'member.reinvited': null,
  'organization.updated': 1600,
  'organization.accessed': 1603,
  'organization.ssoEnabled': 1604,
  'organization.ssoDisabled': 1605,
  'policy.updated': 1700,
  'providerUser.invited': 1800,
  'providerUser.confirmed': 1801,
  'providerUser.updated': 1802,
  'providerUser.removed': 1803,
  'providerUser.accepted': null,
  'providerUser.reinvited': null,
  'client.created': 1900,
  'client.linked': 1901,
  'client.unlinked': 1902,
  'client.accessed': 1903,
  'provider.created': null,
  'provider.setupCompleted': null,
  'provider.updated': null,
  'provider.enabled': null,
  'provider.disabled': null,
  'domain.added': 2000,
  'domain.removed': 2001,
  'domain.verified': 2002,
  'domain.notVerified': 2003,
  'sso.signInRefused': null,
} as const satisfies Record<string, number | null>;

export type EventType = keyof typeof EVENT_CODES;

export interface EventInput {
  type: EventType;
  actor: Actor;
  providerId?: string | null | undefined;
  organizationId?: string | null | undefined;
  memberId?: string | undefined;
  providerUserId?: string | undefined;
  groupId?: string | undefined;
  collectionId?: string | undefined;
  policyId?: string | undefined;
  ip?: string | undefined;
}

export interface Event {
  id: string;
  type: EventType;
  code: number | null;
  date: string;
  actor: Actor;
  providerId?: string;
  organizationId?: string;
  memberId?: string;
  providerUserId?: string;
  groupId?: string;
  collectionId?: string;
  policyId?: string;
  ip?: string;
}

/** Writes one event in the caller's transaction. */
export async function recordEvent(tx: Tx, input: EventInput): Promise<void> {
  const actor = input.actor;
  await tx.db.insert(schema.events).values({
    id: newId(),
    type: input.type,
    code: EVENT_CODES[input.type],
    date: tx.now,
    actorUserId: 'userId' in actor ? actor.userId : null,
    actorProviderUserId: 'providerUserId' in actor ? actor.providerUserId : null,
    actorSystem: 'system' in actor ? actor.system : null,
    providerId: input.providerId ?? null,
    organizationId: input.organizationId ?? null,
    memberId: input.memberId ?? null,
    providerUserId: input.providerUserId ?? null,
    groupId: input.groupId ?? null,
    collectionId: input.collectionId ?? null,
    policyId: input.policyId ?? null,
    ip: input.ip ?? null,
  });
}

export interface EventQuery {
  start?: Date | undefined;
  end?: Date | undefined;
  continuationToken?: string | undefined;
}

export const EVENT_PAGE_SIZE = 50;
const MAX_RANGE_DAYS = 367;
const DAY = 86_400_000;

/** Lists the events of one provider or one organization, newest first. */
export async function listEvents(
  db: Db,
  now: Date,
  scope: { providerId: string } | { organizationId: string },
  query: EventQuery,
): Promise<{ data: Event[]; continuationToken?: string }> {
  const end = query.end ?? now;
  const start = query.start ?? new Date(end.getTime() - 30 * DAY);
  if (!isStorableDate(start) || !isStorableDate(end)) throw new InvalidInput('start and end must lie in the years 0001 to 9999');
  if (start > end) throw new InvalidInput('start must not be after end');
  if (end.getTime() - start.getTime() > MAX_RANGE_DAYS * DAY) {
    throw new InvalidInput(`A date range may span at most ${MAX_RANGE_DAYS} days`);
  }
  const e = schema.events;
  const conditions: SQL[] = [
    'providerId' in scope ? eq(e.providerId, scope.providerId) : eq(e.organizationId, scope.organizationId),
    gte(e.date, start),
    lte(e.date, end),
  ];
  const after = query.continuationToken ? decodeCursor(query.continuationToken) : undefined;
  if (after) {
    conditions.push(or(lt(e.date, after.date), and(eq(e.date, after.date), lt(e.seq, after.seq)))!);
  }
  const rows = await db
    .select()
    .from(e)
    .where(and(...conditions))
    .orderBy(desc(e.date), desc(e.seq))
    .limit(EVENT_PAGE_SIZE + 1);
  const page = rows.slice(0, EVENT_PAGE_SIZE);
  const last = page.at(-1);
  const data = page.map(renderEvent);
  return rows.length > EVENT_PAGE_SIZE && last
    ? { data, continuationToken: encodeCursor({ date: last.date, seq: last.seq }) }
    : { data };
}

function renderEvent(row: typeof schema.events.$inferSelect): Event {
  const actor: Actor = row.actorSystem
    ? ({ system: row.actorSystem } as Actor)
    : row.actorProviderUserId
      ? ({ providerUserId: row.actorProviderUserId, userId: row.actorUserId } as Actor)
      : ({ userId: row.actorUserId } as Actor);
  const event: Event = { id: row.id, type: row.type as EventType, code: row.code, date: row.date.toISOString(), actor };
  for (const key of ['providerId', 'organizationId', 'memberId', 'providerUserId', 'groupId', 'collectionId', 'policyId', 'ip'] as const) {
    const value = row[key];
    if (value) event[key] = value;
  }
  return event;
}

function encodeCursor(cursor: { date: Date; seq: number }): string {
  return Buffer.from(JSON.stringify([cursor.date.toISOString(), cursor.seq])).toString('base64url');
}

function decodeCursor(token: string): { date: Date; seq: number } {
  try {
    const [date, seq] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as [unknown, unknown];
    const parsed = new Date(String(date));
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || !isStorableDate(parsed)) throw new Error();
    return { date: parsed, seq };
  } catch {
    throw new InvalidInput('continuationToken is not valid');
  }
}
