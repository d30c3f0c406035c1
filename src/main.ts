/**
 * Composition root: config → database (migrated) → engine → mail sender → directory sync and its
 * scheduler → HTTP. The only file that listens, and the one that shuts everything down on
 * SIGTERM/SIGINT.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { createDirectorySource } from '../connectors/index.js';
import { createApp } from './app.js';
import { openStorage } from './bootstrap.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { describeOpenFailure } from './db/index.js';
import { createLogger } from './logging.js';
import { createOutboxSender } from './mail/sender.js';
import { createDirectoryWorker, createEngine, createMailQueue } from './membership/index.js';
import { resolveConnectionSettings } from './sync/presets.js';
import { createDirectorySync, reconcileThrough } from './sync/runner.js';
import { createScheduler } from './sync/scheduler.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig({ ...process.env });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.issues.length === 1 ? `Invalid configuration: ${error.issues[0]}.` : error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config);

  if (config.databaseUrl) {
    logger.info('database: PostgreSQL (DATABASE_URL)');
  } else {
    logger.info({ dataDir: config.dataDir }, `database: embedded PGlite at ${config.dataDir} (set DATABASE_URL for PostgreSQL)`);
  }
  if (!config.smtpUrl) logger.info('mail: SMTP_URL unset, mail stays in the outbox table; the operator reads it at GET /api/v1/outbox');

  // Shared with the operator CLI (src/cli.ts): the same key, database and engine dependencies.
  let storage: Awaited<ReturnType<typeof openStorage>>;
  try {
    storage = await openStorage(config);
    await storage.database.migrate();
  } catch (error) {
    failStart(describeOpenFailure(error, config), error);
  }
  const { database, engineDeps } = storage;
  const engine = createEngine(engineDeps, { systemToken: config.systemAdminToken });

  const sender = createOutboxSender({
    queue: createMailQueue(engineDeps),
    smtpUrl: config.smtpUrl,
    from: config.smtpFrom,
    logger,
  });
  sender.start();

  // Rate-limit counters whose window passed are deleted every 10 minutes (by every instance: a
  // delete of what has expired is idempotent).
  let pruning: Promise<unknown> = Promise.resolve();
  const pruneTimer = setInterval(() => {
    pruning = Promise.all([
      engine.pruneRateLimits().catch((error: unknown) => logger.warn({ err: error }, 'pruning rate limits failed')),
      engine.signIn.prune().catch((error: unknown) => logger.warn({ err: error }, 'pruning expired sign-ins failed')),
      // Verified domains are looked up again daily; one whose record is gone stops routing sign-ins.
      engine.recheckDomains(24 * 3_600_000).catch((error: unknown) => logger.warn({ err: error }, 're-checking domains failed')),
    ]);
  }, 10 * 60_000);
  pruneTimer.unref();

  // Directory sync: the runner alone holds the worker (it unseals bind passwords); the HTTP app
  // starts manual runs through it, and the scheduler runs only where SCHEDULER=on.
  const instanceId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const worker = createDirectoryWorker(engineDeps);
  const directory = createDirectorySync({
    worker,
    factory: createDirectorySource,
    resolveSettings: resolveConnectionSettings,
    reconcile: reconcileThrough(engine),
    logger,
    instanceId,
  });
  const scheduler = createScheduler({ worker, sync: directory, logger, instanceId, clock: engineDeps.clock, enabled: config.scheduler });
  scheduler.start();
  if (!config.scheduler) logger.info('directory sync: SCHEDULER=off, this instance runs no scheduled syncs (manual ones still run)');

  const app = createApp({
    engine,
    database,
    logger,
    publicUrl: config.publicUrl,
    bodyLimit: config.bodyLimit,
    rateLimits: config.rateLimits,
    directory,
    ssoAllowHttp: config.ssoAllowHttp,
  });
  const server = await listen(app, config.port).catch((error: unknown) => failStart(describeListenFailure(error, config.port), error));
  logger.info({ port: config.port, publicUrl: config.publicUrl }, `Portico listening on ${config.publicUrl}`);

  // Made once the port is ours: a token printed by a start that then fails would be lost.
  const generated = await engine.ensureSystemToken();
  if (generated) {
    // Printed once, to the terminal and not through the logger: only its hash is stored.
    process.stdout.write(
      `\n  Operator token (shown once; keep it, or set SYSTEM_ADMIN_TOKEN):\n\n    ${generated}\n\n` +
        `  Get going:  curl -H "Authorization: Bearer <token>" -H 'content-type: application/json' \\\n` +
        `                -d '{"name":"My MSP","adminEmail":"you@example.com"}' ${config.publicUrl}/api/v1/providers\n` +
        `  API document: ${config.publicUrl}/api/v1/openapi.json\n\n`,
    );
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // No new scheduled runs; running syncs are asked to stop and awaited (their runs end failed,
    // and the next run completes what they left).
    await scheduler.stop();
    await directory.stop();
    await sender.stop();
    clearInterval(pruneTimer);
    await pruning;
    await database.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // Last line of defence, not a fix: every failure of a request is answered by its adapter. A
  // stray rejection is a bug to find in the log, not a reason to drop every request in flight; an
  // uncaught exception leaves state unknown, so it is logged through pino and the process exits
  // for its supervisor to restart.
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled promise rejection (a bug: some failure was not awaited)');
  });
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception; exiting');
    process.exit(1);
  });
}

function listen(app: ReturnType<typeof createApp>, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port);
    server.once('listening', () => {
      server.off('error', reject);
      resolve(server);
    });
    server.once('error', reject);
  });
}

function describeListenFailure(error: unknown, port: number): string | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return `Port ${port} is already in use by another process; set PORT to a free port, or stop that process.`;
  if (code === 'EACCES') return `Port ${port} needs privileges this user lacks; set PORT to 1024 or above.`;
  return undefined;
}

/**
 * A start that cannot go on: a known cause is one sentence naming the setting to change, on stderr
 * and without a stack; anything else is a bug, printed whole.
 */
function failStart(sentence: string | undefined, error: unknown): never {
  console.error(sentence ?? error);
  process.exit(1);
}

main().catch((error: unknown) => failStart(undefined, error));
