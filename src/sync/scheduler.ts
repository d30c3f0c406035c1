/**
 * Scheduled directory syncs with node-cron: once a minute each instance with SCHEDULER=on looks
 * for due organizations and queues the run of the current slot. The slot is named the same on
 * every instance, and the database inserts it once (`directory_runs_org_slot_key`, ON CONFLICT DO
 * NOTHING): the instance whose insert won runs it, the others do nothing. Runs queued by POST
 * …/sync that no instance claimed yet are picked up too; the claim (a conditional UPDATE) lets
 * exactly one instance run each.
 *
 * Slots: a cron schedule's slot is the minute it matches (5 fields, evaluated in UTC); an interval
 * schedule's slot is the start of the current interval counted from the Unix epoch, so instances
 * agree on it without reading each other's history.
 */
import { createTask, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { DirectoryScheduleEntry, DirectoryWorker } from '../membership/index.js';
import type { DirectorySync } from './runner.js';

export interface SchedulerDeps {
  worker: DirectoryWorker;
  sync: Pick<DirectorySync, 'run' | 'idle'>;
  logger: Logger;
  /** Names this instance in leases and logs. */
  instanceId: string;
  clock: () => Date;
  /** SCHEDULER: false makes `start` and `tick` do nothing (this instance never runs scheduled syncs). */
  enabled: boolean;
}

const MINUTE_MS = 60_000;

export function createScheduler(deps: SchedulerDeps) {
  const log = deps.logger.child({ component: 'directory-scheduler', instanceId: deps.instanceId });
  let task: ScheduledTask | undefined;
  let ticking: Promise<void> = Promise.resolve();
  const matchers = new Map<string, ScheduledTask>();

  /** Whether `cron` matches the minute `slot` (a task built but never started: node-cron's own matcher). */
  const cronMatches = (cron: string, slot: Date) => {
    let matcher = matchers.get(cron);
    if (!matcher) {
      matcher = createTask(cron, () => {}, { timezone: 'Etc/UTC' });
      matchers.set(cron, matcher);
    }
    return matcher.match(slot);
  };

  /** The slot of `entry` due at `now`, or undefined when it has none this minute. */
  const dueSlot = (entry: DirectoryScheduleEntry, now: Date): Date | undefined => {
    const minute = new Date(Math.floor(now.getTime() / MINUTE_MS) * MINUTE_MS);
    if (entry.cron) return cronMatches(entry.cron, minute) ? minute : undefined;
    if (entry.intervalMinutes) {
      const span = entry.intervalMinutes * MINUTE_MS;
      return new Date(Math.floor(now.getTime() / span) * span);
    }
    return undefined;
  };

  /** One pass: fail expired leases, queue due slots, start the runs this instance queued or may claim. */
  const tick = async (): Promise<void> => {
    if (!deps.enabled) return;
    const now = deps.clock();
    try {
      const expired = await deps.worker.failExpiredRuns();
      if (expired > 0) log.warn({ expired }, 'failed directory sync runs whose instance stopped');
      for (const entry of await deps.worker.listSchedules()) {
        let slot: Date | undefined;
        try {
          slot = dueSlot(entry, now);
        } catch (error) {
          log.warn({ err: error, organizationId: entry.organizationId }, 'unreadable directory sync schedule');
        }
        if (!slot) continue;
        const runId = await deps.worker.enqueueScheduledRun({ organizationId: entry.organizationId, scheduledFor: slot });
        if (runId) void deps.sync.run({ organizationId: entry.organizationId, runId });
      }
      for (const queued of await deps.worker.listQueuedRuns()) void deps.sync.run({ organizationId: queued.organizationId, runId: queued.id });
    } catch (error) {
      log.error({ err: error }, 'directory sync scheduler tick failed');
    }
  };

  return {
    /** Runs one pass now (tests; node-cron calls it every minute once started). Passes never overlap. */
    tick: (): Promise<void> => (ticking = ticking.then(tick)),
    start(): void {
      if (!deps.enabled || task) return;
      task = createTask('* * * * *', () => this.tick(), { name: `directory-sync-${deps.instanceId}`, noOverlap: true });
      void task.start();
      log.info('directory sync scheduler started');
    },
    /** Stops the cron, lets a pass in progress end, and waits for the syncs it started. */
    async stop(): Promise<void> {
      if (task) await task.destroy();
      task = undefined;
      for (const matcher of matchers.values()) await matcher.destroy();
      matchers.clear();
      await ticking;
      await deps.sync.idle();
    },
  };
}

export type Scheduler = ReturnType<typeof createScheduler>;
