/**
 * The reconcile engine: a directory snapshot in, membership changes out, through the membership
 * engine as the `directorySync` system actor. It diffs first (`planChanges`, pure), then writes only
 * the changes, in batches of BATCH_SIZE, each batch one transaction with its events and mails.
 *
 * Crash safety comes from planning, not from bookkeeping: the plan is recomputed from the
 * organization's state on every run, and each batch applies all or nothing, so a run that stopped
 * between batches leaves a consistent organization that the next run completes.
 *
 * Run status (design.md: succeeded | failed | guarded):
 *  - `failed`: the organization is not in step with the directory for a reason an administrator must
 *    act on: more than LARGE_IMPORT changes without the large-import option (nothing applied), a
 *    seat shortage (everything else applied; each user left out is a `seatShortage` problem; a seat
 *    shortage is never reported as success, unlike the reference tool), or the engine refusing the
 *    run itself (organization disabled, plan lacking directory sync).
 *  - `guarded`: the read looked implausible (empty, or missing more than `shrinkGuardPercent` of
 *    the linked members): every destructive change was skipped, the rest applied.
 *  - `succeeded`: everything planned was applied; problems of single entries (no email, duplicate
 *    or invalid email, owners) are counted and listed, as the directory must fix them, not Portico.
 * When several apply, `failed` wins over `guarded` and the message names each reason.
 */
import { DomainError, type DirectoryChange, type DirectorySyncHandle, type RefusedChange } from '../membership/index.js';
import { planChanges, type PlannedChange, type ReconcileOptions, type SyncProblem } from './plan.js';
import type { DirectorySnapshot } from './source.js';

/**
 * Changes per transaction: large enough to amortise a round trip and the per-batch checks (each
 * batch reads the address and external-id holders), small enough to hold locks briefly.
 */
export const BATCH_SIZE = 900;

/**
 * Group member rows (additions plus removals) per transaction: a first sync's groups would otherwise
 * put every membership of the directory into one or two transactions. A single change over the limit
 * still goes alone (in a batch of its own).
 */
export const MAX_GROUP_MEMBER_ROWS = 20_000;

function memberRowsOf(change: DirectoryChange): number {
  if (change.kind === 'createGroup') return change.members.length;
  if (change.kind === 'groupMembers') return change.add.length + change.remove.length;
  return 0;
}

/** The plan cut into batches of at most BATCH_SIZE changes and MAX_GROUP_MEMBER_ROWS member rows. */
function* batchesOf(changes: readonly DirectoryChange[]): Generator<DirectoryChange[]> {
  let start = 0;
  let rows = 0;
  for (let i = 0; i < changes.length; i++) {
    const weight = memberRowsOf(changes[i]!);
    if (i > start && (i - start >= BATCH_SIZE || rows + weight > MAX_GROUP_MEMBER_ROWS)) {
      yield changes.slice(start, i);
      start = i;
      rows = 0;
    }
    rows += weight;
  }
  if (start < changes.length) yield changes.slice(start);
}

export type ReconcileStatus = 'succeeded' | 'guarded' | 'failed';

export interface ReconcileCounts {
  read: number;
  invited: number;
  linked: number;
  updated: number;
  revoked: number;
  restored: number;
  removed: number;
  groupsCreated: number;
  groupsUpdated: number;
  problems: number;
}

export interface ReconcileResult {
  status: ReconcileStatus;
  message?: string;
  counts: ReconcileCounts;
  problems: SyncProblem[];
  /** A dry run's planned changes. */
  changes?: PlannedChange[];
}

export interface ReconcileHooks {
  /** After each batch: changes handled so far, of how many. */
  onProgress?(done: number, total: number): void;
  /** Tests only: stop after this many batches, as a crash between batches would. */
  stopAfterBatches?: number;
}

/** The part of the directory sync handle a reconcile uses. */
export type ReconcileTarget = Pick<DirectorySyncHandle, 'currentState' | 'applyBatch'>;

export async function reconcile(
  handle: ReconcileTarget,
  snapshot: DirectorySnapshot,
  options: ReconcileOptions & { dryRun: boolean },
  hooks: ReconcileHooks = {},
): Promise<ReconcileResult> {
  const counts: ReconcileCounts = {
    read: snapshot.users.length,
    invited: 0,
    linked: 0,
    updated: 0,
    revoked: 0,
    restored: 0,
    removed: 0,
    groupsCreated: 0,
    groupsUpdated: 0,
    problems: 0,
  };
  const plan = planChanges(await handle.currentState(), snapshot, options);
  const problems = [...plan.problems];
  const finish = (status: ReconcileStatus, reasons: (string | undefined)[], extra: Partial<ReconcileResult> = {}) => {
    const message = reasons.filter(Boolean).join('. ');
    return {
      status,
      ...(message ? { message } : {}),
      counts: { ...counts, problems: problems.length },
      problems,
      ...extra,
    };
  };

  if (options.dryRun) {
    // What a real run would do: the planned changes and problems; the engine's own checks at apply
    // time (a race with another writer) are the only thing a dry run cannot foresee.
    tally(counts, plan.changes);
    const shortage = shortageOf(problems);
    return finish(plan.tooLarge || shortage ? 'failed' : plan.guard ? 'guarded' : 'succeeded', [plan.tooLarge, shortage, plan.guard], {
      changes: plan.changes,
    });
  }
  if (plan.tooLarge) return finish('failed', [plan.tooLarge, plan.guard]);

  const total = plan.changes.length;
  let done = 0;
  let batches = 0;
  const groupsUpdated = new Set<string>();
  for (const batch of batchesOf(plan.changes)) {
    if (hooks.stopAfterBatches !== undefined && batches >= hooks.stopAfterBatches) break;
    let outcome;
    try {
      outcome = await handle.applyBatch(batch);
    } catch (error) {
      // The engine refused the run itself (organization disabled, plan changed meanwhile): what the
      // earlier batches applied stays, consistent; the next run plans again. Anything else is an
      // internal failure for the runner to log.
      if (!(error instanceof DomainError)) throw error;
      return finish('failed', [`Stopped after ${done} of ${total} changes: ${error.message}`, plan.guard]);
    }
    tally(counts, outcome.applied, groupsUpdated);
    problems.push(...outcome.refused.map(problemOf));
    done += batch.length;
    batches += 1;
    hooks.onProgress?.(done, total);
  }
  const shortage = shortageOf(problems);
  return finish(shortage ? 'failed' : plan.guard ? 'guarded' : 'succeeded', [shortage, plan.guard]);
}

function shortageOf(problems: SyncProblem[]): string | undefined {
  const short = problems.filter((p) => p.code === 'seatShortage').length;
  return short > 0
    ? `${short} user(s) were not invited or restored: the organization has no free seat for them; add seats and sync again`
    : undefined;
}

/** Adds applied changes to the counts; a group renamed and given new members counts once. */
function tally(counts: ReconcileCounts, changes: readonly DirectoryChange[], groupsUpdated = new Set<string>()): void {
  for (const c of changes) {
    if (c.kind === 'invite') counts.invited += 1;
    else if (c.kind === 'link') counts.linked += 1;
    else if (c.kind === 'update') counts.updated += 1;
    else if (c.kind === 'revoke') counts.revoked += 1;
    else if (c.kind === 'restore') counts.restored += 1;
    else if (c.kind === 'remove') counts.removed += 1;
    else if (c.kind === 'createGroup') counts.groupsCreated += 1;
    else groupsUpdated.add(c.groupId);
  }
  counts.groupsUpdated = groupsUpdated.size;
}

function problemOf({ change, code, message }: RefusedChange): SyncProblem {
  return {
    ...('externalId' in change ? { externalId: change.externalId } : {}),
    ...('email' in change && change.email ? { email: change.email } : {}),
    code,
    message,
  };
}
