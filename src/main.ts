/**
 * Composition root: config → database (migrated) → engine → mail sender → directory sync and its
 * scheduler → HTTP. The only file that listens, and the one that shuts everything down on
 * SIGTERM/SIGINT.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createDirectorySource } from '../connectors/index.js';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { openDatabase } from './db/index.js';
import { createLogger } from './logging.js';
import { createOutboxSender } from './mail/sender.js';
import { createDirectoryWorker, createEngine, createMailQueue } from './membership/index.js';
import { createTxtResolver } from './sso/dns.js';
import { resolveConnectionSettings } from './sync/presets.js';
import { createDirectorySync, reconcileThrough } from './sync/runner.js';
import { createScheduler } from './sync/scheduler.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig({ ...process.env });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config);

  if (config.databaseUrl) {
    logger.info('database: PostgreSQL (DATABASE_URL)');
  } else {
    logger.info({ dataDir: config.dataDir }, `database: embedded PGlite at ${config.dataDir} (set DATABASE_URL for PostgreSQL)`);
    ensureLocalEncryptionKey(config);
  }
  if (!config.smtpUrl) logger.info('mail: SMTP_URL unset, mail stays in the outbox table; the operator reads it at GET /api/v1/outbox');

  // The config schema requires it with DATABASE_URL; with PGlite it was generated above.
  const encryptionKey = config.encryptionKey;
  if (!encryptionKey) throw new Error('ENCRYPTION_KEY is unset; make one with `openssl rand -base64 32`');

  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  await database.migrate();
  const engineDeps = {
    db: database.db,
    clock: () => new Date(),
    publicUrl: config.publicUrl,
    encryptionKey,
    limits: { mailsPerRecipient: config.rateLimits.mailsPerRecipient },
    resolveTxt: createTxtResolver(config.dnsServers),
  };
  const engine = createEngine(engineDeps, { systemToken: config.systemAdminToken });
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

  const sender = createOutboxSender({
    queue: createMailQueue(engineDeps),
    smtpUrl: config.smtpUrl,
    from: config.smtpFrom,
    logger: logger.child({ component: 'mail' }),
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
  const server = app.listen(config.port, () => {
    logger.info({ port: config.port, publicUrl: config.publicUrl }, `Portico listening on ${config.publicUrl}`);
  });

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

/** With PGlite, a key for secrets read back is generated once into DATA_DIR. */
function ensureLocalEncryptionKey(config: Config): void {
  if (config.encryptionKey) return;
  mkdirSync(config.dataDir, { recursive: true });
  const file = join(config.dataDir, 'encryption.key');
  if (!existsSync(file)) {
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600 });
  }
  config.encryptionKey = readFileSync(file, 'utf8').trim();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
