/**
 * Runs directory syncs: claims a queued run (the lease in the database), reads the directory
 * through a `SourceFactory`, reconciles, and records the outcome in the run. A failed read ends
 * the run `failed` with its `DirectoryReadError` failure and changes nothing. Nothing here throws
 * out of a background job: every failure is logged and recorded in the run.
 *
 * The composition root builds one `DirectorySync` (main.ts, test/support/app.ts) and gives it to
 * the HTTP app (POST …/sync starts a run in-process at once; POST …/test reads) and to the
 * scheduler. Two instances may both try a queued run: the claim lets one of them run it.
 */
import type { Logger } from 'pino';
import type { DirectoryConnection, DirectoryRunCounts, DirectoryRunResult, DirectoryWorker, Engine } from '../membership/index.js';
import { DirectoryNotConfigured } from '../membership/index.js';
import { reconcile, type ReconcileTarget } from './reconcile.js';
import { DEFAULT_SHRINK_GUARD_PERCENT, type ConnectionSettings, type DirectoryConfigInput } from './settings.js';
import { DirectoryReadError, type DirectorySnapshot, type SourceFactory } from './source.js';

/** The options a run hands the reconcile engine, from the configuration's `options` and the request. */
export interface ReconcileOptions {
  dryRun: boolean;
  disabledUsers?: 'revoke' | 'remove' | undefined;
  removeMissing?: boolean | undefined;
  shrinkGuardPercent?: number | undefined;
  largeImport?: boolean | undefined;
}

export interface ReconcileHooks {
  /** Called as the write side advances; recorded as the run's `progress` by the heartbeat. */
  onProgress?: (progress: Record<string, unknown>) => void;
  /** Aborted when the run's lease was lost or the process is stopping. */
  signal?: AbortSignal;
}

/** What `reconcile(handle, snapshot, options, hooks)` (src/sync/reconcile.ts) answers. */
export interface ReconcileResult {
  status: 'succeeded' | 'guarded' | 'failed';
  message?: string | undefined;
  counts: Partial<DirectoryRunCounts>;
  problems: unknown[];
  changes?: unknown[] | undefined;
}

/**
 * The seam to the reconcile engine: main.ts connects it as
 * `({organizationId, snapshot, options, hooks}) => reconcile(engine.directorySync(organizationId), snapshot, options, hooks)`.
 * `prepare`, when present, is called before the directory is read and starts loading what the
 * reconcile needs from the database (the organization's current state), so that load runs beside
 * the read instead of after it; its promise comes back as `prepared`.
 */
export type ReconcileDirectory = ((input: {
  organizationId: string;
  snapshot: DirectorySnapshot;
  options: ReconcileOptions;
  hooks: ReconcileHooks;
  prepared?: Promise<ReconcileTarget> | undefined;
}) => Promise<ReconcileResult>) & {
  prepare?: (organizationId: string) => Promise<ReconcileTarget>;
};

/**
 * The organization's directory sync handle with its current state already loading. The state is
 * read once, before the directory read ends; every batch still checks each change against the rows
 * as they are then (under the organization lock), so a change made meanwhile is refused as stale or
 * planned again by the next run, as with a state read after the directory.
 */
export async function prepareReconcile(engine: Pick<Engine, 'directorySync'>, organizationId: string): Promise<ReconcileTarget> {
  const handle = await engine.directorySync(organizationId);
  let state: ReturnType<ReconcileTarget['currentState']> | undefined = handle.currentState();
  state.catch(() => undefined); // handed to (and thrown by) the reconcile that asks for it
  return {
    currentState: () => {
      const loaded = state ?? handle.currentState();
      state = undefined;
      return loaded;
    },
    applyBatch: (batch) => handle.applyBatch(batch),
  };
}

/**
 * The reconcile engine through the organization's directory sync handle (`engine.directorySync`),
 * with the configuration's options defaulted: revoke disabled users, remove nobody missing unless
 * asked ("overwrite existing"), a 10% shrink guard, no large import.
 */
export const reconcileThrough = (engine: Pick<Engine, 'directorySync'>): ReconcileDirectory =>
  Object.assign(
    async ({ organizationId, snapshot, options, hooks, prepared }: Parameters<ReconcileDirectory>[0]) => {
      hooks.signal?.throwIfAborted();
      return reconcile(
        prepared ? await prepared : await engine.directorySync(organizationId),
        snapshot,
        {
          dryRun: options.dryRun,
          disabledUsers: options.disabledUsers ?? 'revoke',
          removeMissing: options.removeMissing ?? false,
          shrinkGuardPercent: options.shrinkGuardPercent ?? DEFAULT_SHRINK_GUARD_PERCENT,
          largeImport: options.largeImport ?? false,
        },
        { onProgress: (done, total) => hooks.onProgress?.({ done, total }) },
      );
    },
    { prepare: (organizationId: string) => prepareReconcile(engine, organizationId) },
  );

/** The seam to the presets: `resolveConnectionSettings(config, bindPassword)` of src/sync/presets.ts. */
export type ResolveSettings = (config: DirectoryConfigInput, bindPassword: string) => ConnectionSettings;

export interface DirectorySyncDeps {
  worker: DirectoryWorker;
  factory: SourceFactory;
  resolveSettings: ResolveSettings;
  reconcile: ReconcileDirectory;
  logger: Logger;
  /** Names this process in the lease (`lease_owner`). */
  instanceId: string;
  /** How often a running sync extends its lease and records progress; default 2 s. */
  heartbeatMs?: number;
}

/** What POST …/directory/test answers: what a sync would read, or why the read failed (both 200). */
export type DirectoryTestReport =
  | {
      ok: true;
      users: number;
      groups: number;
      disabled: number;
      samples: { externalId: string; dn: string; email: string | null; name: string | null; disabled: boolean }[];
      problems: DirectoryProblem[];
    }
  | { ok: false; failure: string; message: string };

export interface DirectoryProblem {
  externalId?: string;
  dn?: string;
  problem: string;
}

const SAMPLE_COUNT = 5;
const PROBLEMS_SHOWN = 100;
const DEFAULT_HEARTBEAT_MS = 2_000;

export function createDirectorySync(deps: DirectorySyncDeps) {
  const running = new Set<Promise<void>>();
  const stopping = new AbortController();
  const track = (work: Promise<void>) => {
    running.add(work);
    void work.finally(() => running.delete(work));
    return work;
  };
  return {
    /** Runs a queued run to its end; resolves (never rejects) once it was recorded, or at once if another instance has it. */
    run: (input: { organizationId: string; runId: string }) => track(runDirectorySync({ ...deps, ...input, stop: stopping.signal })),
    /** Starts a queued run in the background (POST …/sync). */
    kick(input: { organizationId: string; runId: string }): void {
      void this.run(input);
    },
    /** Reads the stored configuration's directory and reports it; changes nothing. */
    test: (organizationId: string) => testDirectory(deps, organizationId),
    /** Resolves once no run of this process is in flight. */
    idle: async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    /** Asks running syncs to stop (their runs end failed; the next run completes) and waits for them. */
    stop: async () => {
      stopping.abort();
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}

export type DirectorySync = ReturnType<typeof createDirectorySync>;

/**
 * Claims the run, reads, reconciles and records the outcome. Resolves in every case: a run another
 * instance claimed is left to it; any failure ends the run `failed` and is logged.
 */
export async function runDirectorySync(
  input: DirectorySyncDeps & { organizationId: string; runId: string; stop?: AbortSignal },
): Promise<void> {
  const { worker, logger, instanceId: owner, runId } = input;
  const log = logger.child({ component: 'directory-sync', organizationId: input.organizationId, runId });
  let claimed: Awaited<ReturnType<DirectoryWorker['claimRun']>>;
  try {
    claimed = await worker.claimRun({ runId, owner });
  } catch (error) {
    log.error({ err: error }, 'claiming a directory sync run failed');
    return;
  }
  if (!claimed) {
    log.debug('run not claimed: another instance has it, or it is no longer queued');
    return;
  }

  const abort = new AbortController();
  const onStop = () => abort.abort(new Error('the process is stopping'));
  input.stop?.addEventListener('abort', onStop);
  let progress: Record<string, unknown> | undefined;
  let beating: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    beating = beating.then(async () => {
      try {
        const held = await worker.heartbeat({ runId, owner, progress });
        if (!held) abort.abort(new Error('the lease on this run was lost'));
      } catch (error) {
        log.warn({ err: error }, 'directory sync heartbeat failed');
      }
    });
  }, input.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
  timer.unref();

  let result: DirectoryRunResult;
  try {
    result = await execute({ ...input, organizationId: claimed.organizationId, dryRun: claimed.dryRun, signal: abort.signal, onProgress: (p) => (progress = p) });
  } catch (error) {
    log.error({ err: error }, 'directory sync failed');
    result = { status: 'failed', message: abort.signal.aborted ? `The sync stopped: ${reason(abort.signal)}` : 'The sync failed on an internal error; see the server log' };
  } finally {
    clearInterval(timer);
    input.stop?.removeEventListener('abort', onStop);
    await beating;
  }
  try {
    const recorded = await worker.finishRun({ runId, owner, result });
    if (!recorded) log.warn('the run was taken from this instance (lease expired) before it finished; its outcome was not recorded');
    else log.info({ status: result.status, counts: result.counts }, 'directory sync finished');
  } catch (error) {
    log.error({ err: error }, 'recording the outcome of a directory sync failed; the lease will expire and fail it');
  }
}

async function execute(
  input: DirectorySyncDeps & {
    organizationId: string;
    dryRun: boolean;
    signal: AbortSignal;
    onProgress: (progress: Record<string, unknown>) => void;
  },
): Promise<DirectoryRunResult> {
  const connection = await input.worker.loadConnection(input.organizationId);
  if (!connection) return { status: 'failed', message: 'The organization has no directory configuration' };
  const config = connection.config as DirectoryConfigInput;
  // The organization's state loads while the directory is read; a failed read discards it.
  const prepared = input.reconcile.prepare?.(input.organizationId);
  prepared?.catch(() => undefined); // thrown by the reconcile that awaits it
  let snapshot: DirectorySnapshot;
  try {
    snapshot = await readDirectory(input, connection, {
      signal: input.signal,
      onProgress: (read) => input.onProgress({ phase: 'read', users: read.users, groups: read.groups }),
    });
  } catch (error) {
    if (error instanceof DirectoryReadError) {
      // A failed read never looks like "these people left": nothing is reconciled.
      return { status: 'failed', failure: error.failure, message: error.message };
    }
    throw error;
  }
  input.signal.throwIfAborted();
  const options: ReconcileOptions = {
    dryRun: input.dryRun,
    disabledUsers: config.options?.disabledUsers,
    removeMissing: config.options?.removeMissing,
    shrinkGuardPercent: config.options?.shrinkGuardPercent,
    largeImport: config.options?.largeImport,
  };
  const outcome = await input.reconcile({
    organizationId: input.organizationId,
    snapshot,
    options,
    hooks: { signal: input.signal, onProgress: (p) => input.onProgress({ phase: 'write', ...p }) },
    prepared,
  });
  return {
    status: outcome.status,
    counts: { read: snapshot.users.length, ...outcome.counts },
    problems: outcome.problems,
    changes: input.dryRun ? (outcome.changes ?? []) : outcome.changes,
    message: outcome.message,
  };
}

/** Builds the source, reads everything and closes it, whatever happened. */
async function readDirectory(
  deps: Pick<DirectorySyncDeps, 'factory' | 'resolveSettings'>,
  connection: DirectoryConnection,
  options: Parameters<import('./source.js').DirectorySource['read']>[0],
): Promise<DirectorySnapshot> {
  const source = deps.factory(deps.resolveSettings(connection.config as DirectoryConfigInput, connection.bindPassword));
  try {
    return await source.read(options);
  } finally {
    await source.close().catch(() => {});
  }
}

/** POST …/directory/test: what a sync would read. A read failure is an answer (`ok: false`), not an error. */
async function testDirectory(deps: DirectorySyncDeps, organizationId: string): Promise<DirectoryTestReport> {
  const connection = await deps.worker.loadConnection(organizationId);
  if (!connection) throw new DirectoryNotConfigured();
  let snapshot: DirectorySnapshot;
  try {
    snapshot = await readDirectory(deps, connection, {});
  } catch (error) {
    if (error instanceof DirectoryReadError) return { ok: false, failure: error.failure, message: error.message };
    throw error;
  }
  const problems: DirectoryProblem[] = [
    ...snapshot.users.filter((u) => !u.email).map((u) => ({ externalId: u.externalId, dn: u.dn, problem: 'no email address' })),
    ...duplicateEmails(snapshot),
    ...snapshot.warnings.map((problem) => ({ problem })),
  ];
  return {
    ok: true,
    users: snapshot.users.length,
    groups: snapshot.groups.length,
    disabled: snapshot.users.filter((u) => u.disabled).length,
    samples: snapshot.users
      .slice(0, SAMPLE_COUNT)
      .map(({ externalId, dn, email, name, disabled }) => ({ externalId, dn, email, name, disabled })),
    problems: problems.slice(0, PROBLEMS_SHOWN),
  };
}

function duplicateEmails(snapshot: DirectorySnapshot): DirectoryProblem[] {
  const seen = new Map<string, string>();
  const out: DirectoryProblem[] = [];
  for (const user of snapshot.users) {
    if (!user.email) continue;
    const first = seen.get(user.email);
    if (first === undefined) seen.set(user.email, user.dn);
    else out.push({ externalId: user.externalId, dn: user.dn, problem: `email ${user.email} is also used by ${first}` });
  }
  return out;
}

const reason = (signal: AbortSignal) => (signal.reason instanceof Error ? signal.reason.message : 'aborted');
