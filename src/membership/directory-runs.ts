/**
 * Directory sync runs: their history, and the database lease that makes each run execute once
 * however many instances share the database (style.md: invariants in SQL, never in memory).
 *
 * - At most one run per organization is queued or running: a partial unique index, so a second
 *   start is a `Conflict` and two schedulers cannot queue two.
 * - A scheduled run names its slot (`scheduled_for`); a unique index on (organization, slot) makes
 *   racing schedulers insert it once (`ON CONFLICT DO NOTHING`).
 * - A run executes only after one conditional `UPDATE … WHERE status = 'queued'` claimed it for an
 *   instance (the lease). The runner extends the lease by a heartbeat; a lease that expires (the
 *   instance crashed) fails the run, and the next run starts over and completes what it left.
 */
import { and, desc, eq, inArray, isNotNull, lt, or, sql } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import { inTransaction, newId, type EngineDeps, type Tx } from './context.js';
import { Conflict, DomainError } from './errors.js';
import { DirectoryNotConfigured, loadDirectoryConnection, requireDirectoryAccess, type DirectoryConnection } from './directory-config.js';
import { isId, type OrganizationId } from './ids.js';
import { requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { lockOrganization } from './organization-state.js';

export class DirectoryRunNotFound extends DomainError {
  static readonly code = 'directory_run.not_found';
  constructor(message = 'Directory sync run not found') {
    super(DirectoryRunNotFound.code, message);
  }
}

export const DIRECTORY_RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'guarded'] as const;
export type DirectoryRunStatus = (typeof DIRECTORY_RUN_STATUSES)[number];
export type DirectoryRunOutcome = Extract<DirectoryRunStatus, 'succeeded' | 'failed' | 'guarded'>;
export type DirectoryRunTrigger = 'manual' | 'schedule';

/** How long a claim holds without a heartbeat; a run whose lease passed is failed by the next start or tick. */
export const DIRECTORY_LEASE_MS = 2 * 60_000;
/** The newest runs a history page lists. */
export const DIRECTORY_RUN_PAGE_SIZE = 50;

export const DIRECTORY_RUN_COUNTS = [
  'read',
  'invited',
  'linked',
  'updated',
  'revoked',
  'restored',
  'removed',
  'groupsCreated',
  'groupsUpdated',
  'problems',
] as const;
export type DirectoryRunCounts = Record<(typeof DIRECTORY_RUN_COUNTS)[number], number>;

/** A run as design.md renders it; `progress` while running, `changes` for a dry run (read one run to get them). */
export interface DirectoryRun {
  id: string;
  status: DirectoryRunStatus;
  dryRun: boolean;
  trigger: DirectoryRunTrigger;
  scheduledFor: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  counts: DirectoryRunCounts;
  problems: unknown[];
  changes?: unknown[];
  progress?: Record<string, unknown>;
  message?: string;
  failure?: string;
}

type RunRow = typeof schema.directoryRuns.$inferSelect;
const r = schema.directoryRuns;
const ACTIVE = ['queued', 'running'];

/**
 * Queues a run now (the adapter then starts it in-process; any scheduler may claim it too).
 * A run already queued or running is a `Conflict`; one whose lease expired is failed first.
 */
export async function startDirectoryRun(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  input: { dryRun: boolean; trigger: DirectoryRunTrigger },
): Promise<DirectoryRun> {
  requirePermission(caller, 'manageUsers');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'directorySync');
  const [config] = await tx.db
    .select({ id: schema.directoryConfigs.organizationId })
    .from(schema.directoryConfigs)
    .where(eq(schema.directoryConfigs.organizationId, organizationId));
  if (!config) throw new DirectoryNotConfigured();
  await failExpiredRuns(tx.db, tx.now, organizationId);
  const [row] = await tx.db
    .insert(r)
    .values({ id: newId(), organizationId, status: 'queued', dryRun: input.dryRun, trigger: input.trigger, createdAt: tx.now })
    .onConflictDoNothing()
    .returning();
  if (!row) {
    const [active] = await tx.db
      .select({ id: r.id, status: r.status })
      .from(r)
      .where(and(eq(r.organizationId, organizationId), inArray(r.status, ACTIVE)));
    throw new Conflict('A directory sync of this organization is already queued or running', {
      details: active ? { runId: active.id, status: active.status } : undefined,
    });
  }
  return renderRun(row);
}

export async function listDirectoryRuns(db: Db, organizationId: OrganizationId, caller: OrganizationCaller): Promise<DirectoryRun[]> {
  await requireDirectoryAccess(db, organizationId, caller);
  const rows = await db
    .select()
    .from(r)
    .where(eq(r.organizationId, organizationId))
    .orderBy(desc(r.createdAt), desc(r.id))
    .limit(DIRECTORY_RUN_PAGE_SIZE);
  return rows.map((row) => renderRun(row, { withChanges: false }));
}

export async function getDirectoryRun(
  db: Db,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  runId: string,
): Promise<DirectoryRun> {
  await requireDirectoryAccess(db, organizationId, caller);
  if (!isId(runId)) throw new DirectoryRunNotFound();
  const [row] = await db.select().from(r).where(and(eq(r.organizationId, organizationId), eq(r.id, runId)));
  if (!row) throw new DirectoryRunNotFound();
  return renderRun(row);
}

function renderRun(row: RunRow, options: { withChanges?: boolean } = {}): DirectoryRun {
  const counts = Object.fromEntries(DIRECTORY_RUN_COUNTS.map((k) => [k, Number(row.counts?.[k] ?? 0)])) as DirectoryRunCounts;
  return {
    id: row.id,
    status: row.status as DirectoryRunStatus,
    dryRun: row.dryRun,
    trigger: row.trigger as DirectoryRunTrigger,
    scheduledFor: row.scheduledFor?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
    counts,
    problems: row.problems ?? [],
    ...(options.withChanges !== false && row.changes ? { changes: row.changes } : {}),
    ...(row.status === 'running' && row.progress ? { progress: row.progress } : {}),
    ...(row.message ? { message: row.message } : {}),
    ...(row.failure ? { failure: row.failure } : {}),
  };
}

/**
 * Fails the runs whose instance stopped: running with an expired lease, or queued and never claimed
 * within a lease. Their changes so far are committed batches; the next run completes the rest.
 */
async function failExpiredRuns(db: Db, now: Date, organizationId?: string): Promise<number> {
  const neverClaimedBefore = new Date(now.getTime() - DIRECTORY_LEASE_MS);
  const expired = or(
    and(eq(r.status, 'running'), lt(r.leaseExpiresAt, now)),
    and(eq(r.status, 'queued'), lt(r.createdAt, neverClaimedBefore)),
  );
  const rows = await db
    .update(r)
    .set({
      status: 'failed',
      finishedAt: now,
      leaseExpiresAt: null,
      message: sql`case when ${r.status} = 'running' then 'The instance running this sync stopped before it finished; the next run completes it' else 'The sync was queued but never started' end`,
    })
    .where(organizationId ? and(eq(r.organizationId, organizationId), expired) : expired)
    .returning({ id: r.id });
  return rows.length;
}

/** An organization with a schedule, as the scheduler reads it. */
export interface DirectoryScheduleEntry {
  organizationId: string;
  cron: string | null;
  intervalMinutes: number | null;
}

/** What a finished run records. */
export interface DirectoryRunResult {
  status: DirectoryRunOutcome;
  counts?: Partial<DirectoryRunCounts> | undefined;
  problems?: unknown[] | undefined;
  changes?: unknown[] | undefined;
  message?: string | undefined;
  failure?: string | undefined;
}

/**
 * The operations of the sync runner and scheduler, not of any caller: they act on any
 * organization by id and hand out the unsealed bind password. `main.ts` gives this to the runner
 * only; HTTP handlers receive the engine, which has none of it.
 */
export function createDirectoryWorker(deps: EngineDeps) {
  const now = () => deps.clock();
  const leaseUntil = () => new Date(now().getTime() + DIRECTORY_LEASE_MS);
  return {
    /** The configuration with its password unsealed, or undefined once it was deleted. */
    loadConnection: (organizationId: string): Promise<DirectoryConnection | undefined> =>
      loadDirectoryConnection(deps.db, deps.encryptionKey, organizationId),

    /** Claims a queued run for `owner` (the lease); undefined when another instance has it or it is no longer queued. */
    claimRun: async (input: { runId: string; owner: string }) => {
      if (!isId(input.runId)) return undefined;
      const [row] = await deps.db
        .update(r)
        .set({ status: 'running', leaseOwner: input.owner, leaseExpiresAt: leaseUntil(), startedAt: now() })
        .where(and(eq(r.id, input.runId), eq(r.status, 'queued')))
        .returning({ id: r.id, organizationId: r.organizationId, dryRun: r.dryRun, trigger: r.trigger });
      return row;
    },

    /** Extends the lease and records progress; false when the lease was lost (the run must stop). */
    heartbeat: async (input: { runId: string; owner: string; progress?: Record<string, unknown> | undefined }) => {
      const rows = await deps.db
        .update(r)
        .set({ leaseExpiresAt: leaseUntil(), ...(input.progress ? { progress: input.progress } : {}) })
        .where(and(eq(r.id, input.runId), eq(r.status, 'running'), eq(r.leaseOwner, input.owner)))
        .returning({ id: r.id });
      return rows.length > 0;
    },

    /** Records the outcome and releases the lease; false when the lease had been lost meanwhile. */
    finishRun: async (input: { runId: string; owner: string; result: DirectoryRunResult }) => {
      const { result } = input;
      const counts = Object.fromEntries(DIRECTORY_RUN_COUNTS.map((k) => [k, result.counts?.[k] ?? 0]));
      const rows = await deps.db
        .update(r)
        .set({
          status: result.status,
          finishedAt: now(),
          leaseExpiresAt: null,
          counts,
          problems: result.problems ?? [],
          changes: result.changes ?? null,
          message: result.message ?? null,
          failure: result.failure ?? null,
        })
        .where(and(eq(r.id, input.runId), eq(r.status, 'running'), eq(r.leaseOwner, input.owner)))
        .returning({ id: r.id });
      return rows.length > 0;
    },

    /** Fails every run whose instance stopped (see `failExpiredRuns`); answers how many. */
    failExpiredRuns: () => failExpiredRuns(deps.db, now()),

    /** Organizations (enabled, with the feature) that have a schedule. */
    listSchedules: async (): Promise<DirectoryScheduleEntry[]> => {
      const c = schema.directoryConfigs;
      const o = schema.organizations;
      const rows = await deps.db
        .select({ organizationId: c.organizationId, cron: c.scheduleCron, intervalMinutes: c.scheduleIntervalMinutes, plan: o.plan })
        .from(c)
        .innerJoin(o, eq(o.id, c.organizationId))
        .where(and(eq(o.enabled, true), or(isNotNull(c.scheduleCron), isNotNull(c.scheduleIntervalMinutes))));
      return rows
        .filter((row) => {
          try {
            requireFeature(row.plan, 'directorySync');
            return true;
          } catch {
            return false;
          }
        })
        .map(({ organizationId, cron, intervalMinutes }) => ({ organizationId, cron, intervalMinutes }));
    },

    /**
     * Queues the scheduled run of one slot. Racing instances insert it once: the slot's unique index
     * (and the one-active-run index) turn every other insert into nothing. Answers the run id to the
     * instance whose insert won, undefined to the others.
     */
    enqueueScheduledRun: (input: { organizationId: string; scheduledFor: Date }) =>
      inTransaction(deps, async (tx) => {
        await failExpiredRuns(tx.db, tx.now, input.organizationId);
        const [row] = await tx.db
          .insert(r)
          .values({
            id: newId(),
            organizationId: input.organizationId,
            status: 'queued',
            dryRun: false,
            trigger: 'schedule',
            scheduledFor: input.scheduledFor,
            createdAt: tx.now,
          })
          .onConflictDoNothing()
          .returning({ id: r.id });
        return row?.id;
      }),

    /** Runs queued and not yet claimed (e.g. started by POST …/sync on an instance that then stopped). */
    listQueuedRuns: async (): Promise<{ id: string; organizationId: string }[]> =>
      deps.db
        .select({ id: r.id, organizationId: r.organizationId })
        .from(r)
        .where(eq(r.status, 'queued'))
        .orderBy(r.createdAt)
        .limit(100),
  };
}

export type DirectoryWorker = ReturnType<typeof createDirectoryWorker>;
