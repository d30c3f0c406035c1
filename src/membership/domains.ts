/**
 * Claimed domains (domain.md "SSO and claimed domains"): an organization claims a domain, publishes
 * a random TXT value under `_portico-verification.<domain>`, and verification looks it up in DNS
 * (EngineDeps.resolveTxt, which main builds from DNS_SERVERS). A domain is verified by one
 * organization at most; verifying turns the singleOrg policy on. A verified domain routes
 * `/sso/login?email=` to its organization and lets SSO link existing members by email.
 */
import { randomBytes } from 'node:crypto';
import { and, asc, eq, isNotNull, isNull, lt, ne, or } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Actor } from './actor.js';
import { inTransaction, newId, translateConflicts, type EngineDeps, type Tx } from './context.js';
import { Conflict, define, InvalidInput } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import { requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { loadOrganization } from './organizations.js';
import { lockOrganization } from './organization-state.js';

export class DomainNotFound extends define('domain.not_found', 'Domain not found') {}

export interface ClaimedDomain {
  id: string;
  domain: string;
  /** The TXT record to publish: its name and the value Portico looks for. */
  txtName: string;
  txtRecord: string;
  verified: boolean;
  verifiedAt: string | null;
  lastCheckedAt: string | null;
  createdAt: string;
}

/** Resolves the TXT records of a name: each record is its character-strings. */
export type TxtResolver = (name: string) => Promise<string[][]>;

type DomainRow = typeof schema.claimedDomains.$inferSelect;

const TXT_PREFIX = '_portico-verification';
// RFC 1035 labels (letters, digits, inner hyphens, ≤ 63), at least two, ≤ 253 in all; IDNs come in punycode.
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The domain as stored: lower-case, without a trailing dot; refused when it is not a domain name. */
export function normalizeDomain(input: string): string {
  const domain = input.trim().toLowerCase().replace(/\.$/, '');
  if (!DOMAIN.test(domain)) {
    throw new InvalidInput('The domain is not a valid domain name', {
      details: [{ path: 'body.domain', message: 'A domain name such as example.com (internationalised names in punycode)' }],
    });
  }
  return domain;
}

async function requireDomainAccess(db: Db, organizationId: OrganizationId, caller: OrganizationCaller): Promise<void> {
  requirePermission(caller, 'manageSso');
  requireFeature((await loadOrganization(db, organizationId)).plan, 'sso');
}

export async function addDomain(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller, input: string): Promise<ClaimedDomain> {
  requirePermission(caller, 'manageSso');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'sso');
  const domain = normalizeDomain(input);
  await requireNotVerifiedElsewhere(tx.db, org.id, domain);
  const d = schema.claimedDomains;
  const [row] = await translateConflicts(
    () =>
      tx.db
        .insert(d)
        .values({
          organizationId: org.id,
          id: newId(),
          domain,
          txtValue: `portico-verification=${randomBytes(24).toString('base64url')}`,
          createdAt: tx.now,
        })
        .returning(),
    { claimed_domains_org_domain_key: 'The organization already claims this domain' },
  );
  await recordEvent(tx, { type: 'domain.added', actor: caller.actor, organizationId: org.id });
  return render(row!);
}

export async function listDomains(db: Db, organizationId: OrganizationId, caller: OrganizationCaller): Promise<ClaimedDomain[]> {
  await requireDomainAccess(db, organizationId, caller);
  const d = schema.claimedDomains;
  const rows = await db.select().from(d).where(eq(d.organizationId, organizationId)).orderBy(asc(d.createdAt), asc(d.id));
  return rows.map(render);
}

export async function removeDomain(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller, id: string): Promise<void> {
  requirePermission(caller, 'manageSso');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'sso');
  if (!isId(id)) throw new DomainNotFound();
  const d = schema.claimedDomains;
  const deleted = await tx.db
    .delete(d)
    .where(and(eq(d.organizationId, org.id), eq(d.id, id)))
    .returning({ id: d.id });
  if (deleted.length === 0) throw new DomainNotFound();
  await recordEvent(tx, { type: 'domain.removed', actor: caller.actor, organizationId: org.id });
}

/**
 * Looks the domain's TXT records up and records the outcome: verified (and singleOrg on), or not.
 * The lookup runs outside any transaction; a failed lookup is "not verified", never an error.
 */
export async function verifyDomain(
  deps: EngineDeps,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  id: string,
): Promise<ClaimedDomain> {
  await requireDomainAccess(deps.db, organizationId, caller);
  const row = await loadDomain(deps.db, organizationId, id);
  return checkDomain(deps, row, caller.actor);
}

/** Re-checks verified domains whose last check is older than `olderThanMs` (a scheduled job). */
export async function recheckDomains(deps: EngineDeps, olderThanMs: number): Promise<number> {
  const d = schema.claimedDomains;
  const due = new Date(deps.clock().getTime() - olderThanMs);
  const rows = await deps.db
    .select()
    .from(d)
    .where(and(isNotNull(d.verifiedAt), or(isNull(d.lastCheckedAt), lt(d.lastCheckedAt, due))))
    .limit(100);
  for (const row of rows) await checkDomain(deps, row, { system: 'domainVerification' });
  return rows.length;
}

async function checkDomain(deps: EngineDeps, row: DomainRow, actor: Actor): Promise<ClaimedDomain> {
  const outcome = await lookup(deps, `${TXT_PREFIX}.${row.domain}`, row.txtValue);
  return inTransaction(deps, async (tx) => {
    await lockOrganization(tx, row.organizationId as OrganizationId);
    const d = schema.claimedDomains;
    const [current] = await tx.db.select().from(d).where(eq(d.id, row.id)).for('update');
    if (!current) throw new DomainNotFound();
    if (outcome !== 'found') {
      // A resolver out of reach proves nothing: a verified domain stays verified until its record is gone.
      const [updated] = await tx.db
        .update(d)
        .set({ verifiedAt: outcome === 'absent' ? null : current.verifiedAt, lastCheckedAt: tx.now })
        .where(eq(d.id, row.id))
        .returning();
      // A failed lookup is no finding: it is recorded only when the domain was not verified anyway.
      if (outcome === 'absent' || !current.verifiedAt) {
        await recordEvent(tx, { type: 'domain.notVerified', actor, organizationId: row.organizationId });
      }
      return render(updated!);
    }
    await requireNotVerifiedElsewhere(tx.db, row.organizationId, row.domain);
    const [updated] = await translateConflicts(
      () =>
        tx.db
          .update(d)
          .set({ verifiedAt: current.verifiedAt ?? tx.now, lastCheckedAt: tx.now })
          .where(eq(d.id, row.id))
          .returning(),
      { claimed_domains_verified_key: 'Another organization verified this domain' },
    );
    if (!current.verifiedAt) {
      await recordEvent(tx, { type: 'domain.verified', actor, organizationId: row.organizationId });
      await enableSingleOrg(tx, row.organizationId, actor);
    }
    return render(updated!);
  });
}

/** Whether the expected value is published; a name without TXT records is `absent`, a failed lookup `unreachable`. */
async function lookup(deps: EngineDeps, name: string, expected: string): Promise<'found' | 'absent' | 'unreachable'> {
  if (!deps.resolveTxt) return 'unreachable';
  try {
    const records = await deps.resolveTxt(name);
    // A long TXT value arrives split into character-strings; joined, it is the record.
    return records.some((parts) => parts.join('') === expected) ? 'found' : 'absent';
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return code === 'ENOTFOUND' || code === 'ENODATA' ? 'absent' : 'unreachable';
  }
}

async function requireNotVerifiedElsewhere(db: Db, organizationId: string, domain: string): Promise<void> {
  const d = schema.claimedDomains;
  const [other] = await db
    .select({ id: d.id })
    .from(d)
    .where(and(eq(d.domain, domain), ne(d.organizationId, organizationId), isNotNull(d.verifiedAt)));
  if (other) throw new Conflict('Another organization verified this domain');
}

/** Verifying a domain turns singleOrg on (domain.md); an event records it when it changes. */
async function enableSingleOrg(tx: Tx, organizationId: string, actor: Actor): Promise<void> {
  const p = schema.policies;
  const [row] = await tx.db
    .insert(p)
    .values({ organizationId, id: newId(), type: 'singleOrg', enabled: true, data: null, createdAt: tx.now, updatedAt: tx.now })
    .onConflictDoUpdate({ target: [p.organizationId, p.type], set: { enabled: true, updatedAt: tx.now }, setWhere: eq(p.enabled, false) })
    .returning({ id: p.id });
  if (row) await recordEvent(tx, { type: 'policy.updated', actor, organizationId, policyId: row.id });
}

/** The organization that verified the domain of `email`, if any (routing `/sso/login?email=`). */
export async function organizationOfEmailDomain(db: Db, email: string): Promise<string | undefined> {
  const at = email.lastIndexOf('@');
  if (at < 0) return undefined;
  const domain = email.slice(at + 1).trim().toLowerCase().replace(/\.$/, '');
  const d = schema.claimedDomains;
  const [row] = await db
    .select({ identifier: schema.organizations.identifier })
    .from(d)
    .innerJoin(schema.organizations, eq(schema.organizations.id, d.organizationId))
    .where(and(eq(d.domain, domain), isNotNull(d.verifiedAt)));
  return row?.identifier;
}

async function loadDomain(db: Db, organizationId: string, id: string): Promise<DomainRow> {
  if (!isId(id)) throw new DomainNotFound();
  const d = schema.claimedDomains;
  const [row] = await db.select().from(d).where(and(eq(d.organizationId, organizationId), eq(d.id, id)));
  if (!row) throw new DomainNotFound();
  return row;
}

function render(row: DomainRow): ClaimedDomain {
  return {
    id: row.id,
    domain: row.domain,
    txtName: `${TXT_PREFIX}.${row.domain}`,
    txtRecord: row.txtValue,
    verified: row.verifiedAt !== null,
    verifiedAt: row.verifiedAt?.toISOString() ?? null,
    lastCheckedAt: row.lastCheckedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}
