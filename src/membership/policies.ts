/** Organization policies (Enterprise). Data is validated per type; dependencies are enforced. */
import { and, eq, inArray } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import { newId, type Tx } from './context.js';
import { InvalidInput, PolicyDependency } from './errors.js';
import { recordEvent } from './events.js';
import type { OrganizationId } from './ids.js';
import { requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { lockOrganization } from './organization-state.js';
import {
  dependentsOf,
  isPolicyType,
  POLICY_DATA,
  POLICY_NEEDS,
  POLICY_TYPE_CODES,
  POLICY_TYPES,
  type PolicyType,
} from './policies.rules.js';

export interface Policy {
  id: string | null;
  type: PolicyType;
  typeCode: number;
  enabled: boolean;
  data: Record<string, unknown> | null;
  updatedAt: string | null;
}

/** Every policy type, stored or not (an unstored one is disabled). */
export async function listPolicies(db: Db, organizationId: string): Promise<Policy[]> {
  const rows = await db.select().from(schema.policies).where(eq(schema.policies.organizationId, organizationId));
  const byType = new Map(rows.map((r) => [r.type, r]));
  return POLICY_TYPES.map((type) => {
    const row = byType.get(type);
    return {
      id: row?.id ?? null,
      type,
      typeCode: POLICY_TYPE_CODES[type],
      enabled: row?.enabled ?? false,
      data: row?.data ?? null,
      updatedAt: row?.updatedAt.toISOString() ?? null,
    };
  });
}

export async function putPolicy(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  input: { type: string; enabled: boolean; data?: unknown },
): Promise<Policy> {
  requirePermission(caller, 'managePolicies');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'policies');
  if (!isPolicyType(input.type)) throw new InvalidInput(`Unknown policy type ${input.type}`);
  const type = input.type;
  const parsed = POLICY_DATA[type].safeParse(input.data ?? undefined);
  if (!parsed.success) {
    throw new InvalidInput(`The data of the ${type} policy is invalid`, {
      // Each unknown key is its own path, as the HTTP edge lists them.
      details: parsed.error.issues.flatMap((i) => {
        const path = ['data', ...i.path.map(String)];
        if (i.code === 'unrecognized_keys') {
          return i.keys.map((key) => ({ path: [...path, key].join('.'), message: 'Unrecognized field' }));
        }
        return [{ path: path.join('.'), message: i.message }];
      }),
    });
  }
  const p = schema.policies;
  const related = [...(POLICY_NEEDS[type] ?? []), ...dependentsOf(type)];
  const enabledRelated = related.length
    ? await tx.db
        .select({ type: p.type })
        .from(p)
        .where(and(eq(p.organizationId, org.id), inArray(p.type, related), eq(p.enabled, true)))
    : [];
  const on = new Set(enabledRelated.map((r) => r.type));
  if (input.enabled) {
    const missing = (POLICY_NEEDS[type] ?? []).filter((needed) => !on.has(needed));
    if (missing.length) throw new PolicyDependency(`${type} needs ${missing.join(', ')} enabled first`);
  } else {
    const blocking = dependentsOf(type).filter((dependent) => on.has(dependent));
    if (blocking.length) throw new PolicyDependency(`${blocking.join(', ')} depend(s) on ${type}; disable them first`);
  }
  const data = (parsed.data ?? null) as Record<string, unknown> | null;
  const [row] = await tx.db
    .insert(p)
    .values({ organizationId: org.id, id: newId(), type, enabled: input.enabled, data, createdAt: tx.now, updatedAt: tx.now })
    .onConflictDoUpdate({ target: [p.organizationId, p.type], set: { enabled: input.enabled, data, updatedAt: tx.now } })
    .returning();
  await recordEvent(tx, { type: 'policy.updated', actor: caller.actor, organizationId: org.id, policyId: row!.id });
  return {
    id: row!.id,
    type,
    typeCode: POLICY_TYPE_CODES[type],
    enabled: row!.enabled,
    data: row!.data ?? null,
    updatedAt: row!.updatedAt.toISOString(),
  };
}
