#!/usr/bin/env node
/**
 * The operator CLI, `npx portico <command>`: what an operator otherwise does by hand or through
 * the operator token. A composition root like main.ts: it reads the same settings, opens the same
 * database through src/bootstrap.ts and acts through the engine only. Commands are rows of one
 * table, so a new one (a later `license verify`) is one more row.
 *
 * Exit status: 0 done, 1 the command failed, 2 wrong usage or an invalid configuration.
 */
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { localKeyFile, openConfiguredDatabase, openStorage } from './bootstrap.js';
import { ConfigError, loadConfig, processEnvironment, type Config } from './config.js';
import { runLicenseVerify } from './licenses/cli.js';
import { createEngine, DomainError, isDatabaseUnavailable, isStorableText, type Engine, type Principal } from './membership/index.js';

/** Where a run reads its settings and writes its output (the process's, or a test's). */
export interface Io {
  env: Record<string, string | undefined>;
  stdout(text: string): void;
  stderr(text: string): void;
}

type OptionSpec = { type: 'string' | 'boolean'; short?: string; description: string; placeholder?: string; required?: boolean };
type Values = Record<string, string | boolean | undefined>;

interface Command {
  /** The words that name it, e.g. `provider create`. */
  name: string;
  summary: string;
  /** Paragraphs after the usage line of `portico <command> --help`. */
  details?: string;
  options: Record<string, OptionSpec>;
  run(values: Values, io: Io): Promise<number>;
}

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

/** A failure to report as one sentence under the command's name, with its exit status. */
class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILED,
  ) {
    super(message);
  }
}

/** The CLI acts as the operator, as a holder of the operator token would: it has the host's database. */
const OPERATOR: Principal = { kind: 'system' };

const json = { type: 'boolean', description: 'Print JSON instead of text' } as const;

const commands: Command[] = [
  {
    name: 'token rotate',
    summary: 'Replace the operator token and print the new one once',
    details:
      'The previous token stops working at once, on every running instance. The new token goes to stdout\n' +
      '(only its hash is stored), the explanation to stderr, so `TOKEN=$(npx portico token rotate)` works.\n' +
      'Refused while SYSTEM_ADMIN_TOKEN is set: that variable replaces the stored token, so change it instead.',
    options: {},
    run: async (_values, io) =>
      withEngine(io, async (engine) => {
        const token = await engine.rotateSystemToken();
        io.stderr('New operator token (shown once; the previous one no longer works):\n');
        io.stdout(`${token}\n`);
        return 0;
      }),
  },
  {
    name: 'provider create',
    summary: "Create a provider and queue its admin's setup mail",
    details:
      'As POST /api/v1/providers does: the provider starts pending, and its admin gets a mail with a setup\n' +
      'link. The running server sends it; without SMTP_URL read it with `portico mail list`.',
    options: {
      name: { type: 'string', description: 'Name of the provider', placeholder: 'name', required: true },
      'admin-email': { type: 'string', description: 'Who receives the setup mail', placeholder: 'email', required: true },
      json,
    },
    run: async (values, io) => {
      const input = parseInput(createProviderInput, { name: values.name, adminEmail: values['admin-email'] });
      return withEngine(io, async (engine) => {
        const provider = await engine.createProvider(OPERATOR, input);
        if (values.json) io.stdout(`${JSON.stringify(provider, null, 2)}\n`);
        else io.stdout(`Created provider ${provider.name} (${provider.id}); setup mail queued for ${input.adminEmail}.\n`);
        return 0;
      });
    },
  },
  {
    name: 'mail list',
    summary: 'List the outbox, unsent mail first, with the bodies of unsent mail',
    details:
      'The newest 100 mails, as GET /api/v1/outbox shows them to the operator; unsent ones (pending or\n' +
      'failed) come first and show their body, so a setup or invitation link can be passed on by hand.',
    options: {
      recipient: { type: 'string', description: 'Only mail to this address', placeholder: 'email' },
      unsent: { type: 'boolean', description: 'Only mail not sent yet (pending or failed)' },
      json,
    },
    run: async (values, io) => {
      const recipient = typeof values.recipient === 'string' ? values.recipient : undefined;
      return withEngine(io, async (engine) => {
        const newestFirst = await engine.listOutbox(OPERATOR, { recipient });
        const unsent = newestFirst.filter((mail) => mail.status !== 'sent');
        const mails = values.unsent ? unsent : [...unsent, ...newestFirst.filter((mail) => mail.status === 'sent')];
        if (values.json) {
          io.stdout(`${JSON.stringify(mails, null, 2)}\n`);
          return 0;
        }
        if (mails.length === 0) io.stdout(values.unsent ? 'No unsent mail.\n' : 'The outbox is empty.\n');
        for (const mail of mails) {
          io.stdout(`${mail.status.padEnd(7)} ${mail.createdAt}  to ${mail.to}  ${mail.subject}\n`);
          if (mail.status !== 'sent') io.stdout(`${indent(mail.text)}\n`);
        }
        return 0;
      });
    },
  },
  {
    name: 'db migrate',
    summary: 'Apply the database migrations (safe to repeat)',
    details: 'The server applies them on start too; run this before a rolling upgrade on PostgreSQL.',
    options: {},
    run: async (_values, io) => {
      const config = readConfig(io);
      const database = await openConfiguredDatabase(config);
      try {
        await database.migrate();
      } finally {
        await database.close();
      }
      io.stdout(`Migrations applied to ${describeDatabase(config)}.\n`);
      return 0;
    },
  },
  {
    name: 'config check',
    summary: 'Check the configuration and whether the database is reachable',
    details: 'Prints every problem of the settings in the environment, then tries the database.',
    options: {},
    run: checkConfig,
  },
];

const createProviderInput = z.strictObject({
  name: z.string('--name is required').trim().min(1).max(200).refine(isStorableText, 'must not contain NUL or an unpaired surrogate'),
  adminEmail: z.email('--admin-email must be an email address').max(254),
});

function parseInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new CliFailure(parsed.error.issues.map((issue) => issue.message).join('; '), EXIT_USAGE);
  return parsed.data;
}

function readConfig(io: Io): Config {
  try {
    return loadConfig(io.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new CliFailure(`${error.message}\nRun \`portico config check\` to see every setting checked.`, EXIT_USAGE);
    }
    throw error;
  }
}

const describeDatabase = (config: Config): string =>
  config.databaseUrl ? `PostgreSQL at ${redactUrl(config.databaseUrl)}` : `embedded PGlite at ${config.dataDir}`;

/** The URL without its credentials. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.host}${parsed.pathname}`;
  } catch {
    return '(DATABASE_URL)';
  }
}

/**
 * Runs `work` with an engine over the configured, migrated database (as the server starts), and
 * closes it. With PGlite, a missing DATA_DIR is refused instead of created: it usually means the
 * command runs from another folder than the server.
 */
async function withEngine(io: Io, work: (engine: Engine) => Promise<number>): Promise<number> {
  const config = readConfig(io);
  if (!config.databaseUrl && !config.dataDir.startsWith('memory://') && !existsSync(config.dataDir)) {
    throw new CliFailure(
      `DATA_DIR ${config.dataDir} does not exist; run this where the server runs, set DATA_DIR, or create it with \`portico db migrate\``,
    );
  }
  const { database, engineDeps } = await openStorage(config);
  try {
    await database.migrate();
    return await work(createEngine(engineDeps, { systemToken: config.systemAdminToken }));
  } finally {
    await database.close();
  }
}

async function checkConfig(_values: Values, io: Io): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(io.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stdout(`configuration: ${error.issues.length} problem${error.issues.length === 1 ? '' : 's'}\n`);
    for (const issue of error.issues) io.stdout(`  - ${issue}\n`);
    io.stdout('database: not checked (fix the configuration first)\n');
    return EXIT_USAGE;
  }
  io.stdout('configuration: ok\n');
  io.stdout(`  public URL: ${config.publicUrl}\n`);
  io.stdout(`  mail: ${config.smtpUrl ? `SMTP at ${redactUrl(config.smtpUrl)}` : 'SMTP_URL unset, mail stays in the outbox (`portico mail list`)'}\n`);
  io.stdout(`  operator token: ${config.systemAdminToken ? 'SYSTEM_ADMIN_TOKEN (replaces the stored one)' : 'stored hash (`portico token rotate` replaces it)'}\n`);
  if (!config.databaseUrl) {
    const keySource = config.encryptionKey
      ? 'ENCRYPTION_KEY'
      : existsSync(localKeyFile(config))
        ? localKeyFile(config)
        : `not generated yet (the first start writes ${localKeyFile(config)})`;
    io.stdout(`  encryption key: ${keySource}\n`);
    if (!config.dataDir.startsWith('memory://') && !existsSync(config.dataDir)) {
      io.stdout(`database: ${describeDatabase(config)} does not exist yet (the first start creates it)\n`);
      return 0;
    }
  }
  const problem = await databaseProblem(config);
  io.stdout(`database: ${describeDatabase(config)} ${problem ? `is not reachable: ${problem}` : 'is reachable'}\n`);
  return problem ? EXIT_FAILED : 0;
}

/** Why the configured database does not answer a query, or undefined when it does. */
async function databaseProblem(config: Config): Promise<string | undefined> {
  try {
    const database = await openConfiguredDatabase(config);
    try {
      return (await database.ping()) ? undefined : 'it did not answer a query in time';
    } finally {
      await database.close();
    }
  } catch (error) {
    return firstLine(error);
  }
}

const indent = (text: string): string =>
  text
    .trimEnd()
    .split('\n')
    .map((line) => (line ? `    ${line}` : ''))
    .join('\n');

const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0]!;

function renderHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    'Usage: portico <command> [options]',
    '',
    'Operator commands for Portico. They read the settings the server reads (DATABASE_URL or DATA_DIR,',
    'ENCRYPTION_KEY, SYSTEM_ADMIN_TOKEN, …) from the environment and open the same database. With PGlite',
    '(no DATABASE_URL), run them from the folder the server runs in, while it is stopped.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    `  ${'license verify'.padEnd(width)}Verify a license offline against the issuer's public keys (no database)`,
    '',
    'Run `portico <command> --help` for its options.',
    'Exit status: 0 done, 1 the command failed, 2 wrong usage or an invalid configuration.',
    '',
  ].join('\n');
}

function renderCommandHelp(command: Command): string {
  const options = Object.entries({ ...command.options, help: { type: 'boolean', short: 'h', description: 'Show this help' } as OptionSpec });
  const labels = options.map(([name, spec]) => `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.placeholder ? ` <${spec.placeholder}>` : ''}`);
  const width = Math.max(...labels.map((l) => l.length)) + 2;
  const usage = Object.entries(command.options).map(([name, spec]) => {
    const option = `--${name}${spec.placeholder ? ` <${spec.placeholder}>` : ''}`;
    return spec.required ? option : `[${option}]`;
  });
  return [
    `Usage: portico ${command.name}${usage.length ? ` ${usage.join(' ')}` : ''}`,
    '',
    `${command.summary}.`,
    ...(command.details ? ['', command.details] : []),
    '',
    'Options:',
    ...options.map(([, spec], i) => `  ${labels[i]!.padEnd(width)}${spec.description}`),
    '',
  ].join('\n');
}

/** The command `argv` names, and the arguments after its name. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  for (const command of commands) {
    const words = command.name.split(' ');
    if (words.every((word, i) => argv[i] === word)) return { command, rest: argv.slice(words.length) };
  }
  return undefined;
}

/** Runs the CLI on `argv` (without `node` and the script) and returns the exit status. */
export async function run(argv: string[], io: Io): Promise<number> {
  const [first, second] = argv;
  if (first === undefined) {
    io.stderr(renderHelp());
    return EXIT_USAGE;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const named = findCommand(argv.slice(1));
    io.stdout(named && second !== undefined ? renderCommandHelp(named.command) : renderHelp());
    return 0;
  }
  // Offline and database-free: a self-hosted instance's operator checks a license with the issuer's keys.
  if (first === 'license' && second === 'verify') {
    return runLicenseVerify(argv.slice(2), { stdout: (line) => io.stdout(`${line}\n`), stderr: (line) => io.stderr(`${line}\n`) });
  }
  const found = findCommand(argv);
  if (!found) {
    const group = commands.filter((c) => c.name.split(' ')[0] === first).map((c) => c.name.split(' ')[1]);
    io.stderr(
      group.length > 0
        ? `portico ${first}: ${second === undefined ? 'a subcommand is needed' : `unknown subcommand "${second}"`}; try ${group.map((g) => `\`portico ${first} ${g}\``).join(', ')}.\n`
        : `portico: unknown command "${first}"; run \`portico --help\` for the list.\n`,
    );
    return EXIT_USAGE;
  }
  const { command, rest } = found;
  let values: Values;
  try {
    const options = Object.fromEntries(
      Object.entries(command.options).map(([name, spec]) => [name, spec.short ? { type: spec.type, short: spec.short } : { type: spec.type }]),
    );
    values = parseArgs({ args: rest, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false })
      .values as Values;
  } catch (error) {
    // node:util's messages run on with advice about `--`; the first sentence names the problem.
    const reason = firstLine(error).split('. ')[0]!.replace(/\.$/, '');
    io.stderr(`portico ${command.name}: ${reason}; run \`portico ${command.name} --help\` for its options.\n`);
    return EXIT_USAGE;
  }
  if (values.help) {
    io.stdout(renderCommandHelp(command));
    return 0;
  }
  try {
    return await command.run(values, io);
  } catch (error) {
    io.stderr(`portico ${command.name}: ${explain(error)}\n`);
    return error instanceof CliFailure ? error.exitCode : EXIT_FAILED;
  }
}

/** One sentence for a failure: the engine's safe message, or what went wrong and which setting to look at. */
function explain(error: unknown): string {
  if (error instanceof CliFailure || error instanceof DomainError) return error.message;
  if (isDatabaseUnavailable(error)) return `the database is not reachable (${firstLine(error)}); check DATABASE_URL`;
  return firstLine(error);
}

const invokedDirectly = (): boolean => {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
};

if (invokedDirectly()) {
  const io: Io = {
    env: processEnvironment(),
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
  run(process.argv.slice(2), io).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`portico: ${firstLine(error)}\n`);
      process.exit(EXIT_FAILED);
    },
  );
}
