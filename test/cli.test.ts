/**
 * The operator CLI (src/cli.ts), run in-process through `run(argv, io)` against a PGlite DATA_DIR
 * in a temporary folder and against a throwaway PostgreSQL database, and once as a process the way
 * `npx portico` starts it. What a command changed is read back through the engine.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../src/bootstrap.js';
import { run, type Io } from '../src/cli.js';
import { loadConfig } from '../src/config.js';
import { createEngine, createMailQueue, Unauthenticated, type Engine, type EngineDeps } from '../src/membership/index.js';
import { describeEachDriver, openTestDatabase, type TestDatabase } from './support/db.js';
import { TEST_ENCRYPTION_KEY } from './support/app.js';

const SLOW = 180_000;

/** Runs the CLI in-process with `env`, capturing what it prints. */
async function cli(env: Record<string, string>, ...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { env, stdout: (text) => void (stdout += text), stderr: (text) => void (stderr += text) };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

const temporaryFolder = () => mkdtempSync(join(tmpdir(), 'portico-cli-'));

describeEachDriver('operator CLI', (driver) => {
  let env: Record<string, string>;
  let testDb: TestDatabase | undefined;
  let folder: string;

  beforeAll(async () => {
    folder = temporaryFolder();
    if (driver === 'postgres') {
      testDb = await openTestDatabase('postgres');
      env = { DATABASE_URL: testDb.url!, ENCRYPTION_KEY: TEST_ENCRYPTION_KEY };
    } else {
      env = { DATA_DIR: join(folder, 'data') };
    }
  }, SLOW);
  afterAll(async () => {
    await testDb?.close();
    rmSync(folder, { recursive: true, force: true });
  });

  /** The engine over the database the CLI uses, as the server builds it; closed after `work`. */
  async function withEngine<T>(work: (engine: Engine, deps: EngineDeps) => Promise<T>): Promise<T> {
    const config = loadConfig(env);
    const { database, engineDeps } = await openStorage(config);
    try {
      await database.migrate();
      return await work(createEngine(engineDeps, { systemToken: config.systemAdminToken }), engineDeps);
    } finally {
      await database.close();
    }
  }

  it('db migrate creates the schema and running it again changes nothing', async () => {
    const first = await cli(env, 'db', 'migrate');
    expect(first, first.stderr).toMatchObject({ code: 0 });
    expect(first.stdout).toMatch(driver === 'postgres' ? /PostgreSQL at 127\.0\.0\.1:5432\/portico_test_/ : /embedded PGlite at /);
    const again = await cli(env, 'db', 'migrate');
    expect(again, again.stderr).toMatchObject({ code: 0 });
    expect(await withEngine((engine) => engine.listProviders({ kind: 'system' }))).toEqual([]);
  }, SLOW);

  it('token rotate makes the old operator token fail and prints a new one that works', async () => {
    const old = await withEngine((engine) => engine.ensureSystemToken());
    expect(old).toMatch(/^pto_/);

    const rotated = await cli(env, 'token', 'rotate');
    expect(rotated.code, rotated.stderr).toBe(0);
    const token = rotated.stdout.trim();
    expect(token).toMatch(/^pto_[\w-]{43}$/);
    expect(rotated.stderr).toContain('shown once');

    await withEngine(async (engine) => {
      await expect(engine.authenticate(old!)).rejects.toBeInstanceOf(Unauthenticated);
      await expect(engine.authenticate(token)).resolves.toEqual({ kind: 'system' });
    });
  }, SLOW);

  it('token rotate is refused while SYSTEM_ADMIN_TOKEN is set, and the stored token keeps working', async () => {
    const stored = (await cli(env, 'token', 'rotate')).stdout.trim();
    const refused = await cli({ ...env, SYSTEM_ADMIN_TOKEN: 'x'.repeat(40) }, 'token', 'rotate');
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(/^portico token rotate: SYSTEM_ADMIN_TOKEN is set .*change it there instead\n$/);
    await withEngine((engine) => expect(engine.authenticate(stored)).resolves.toEqual({ kind: 'system' }));
  }, SLOW);

  it('provider create queues the setup mail, and mail list shows unsent mail first with its link', async () => {
    const first = await cli(env, 'provider', 'create', '--name', 'Acme IT', '--admin-email', 'Admin@Acme.example', '--json');
    expect(first.code, first.stderr).toBe(0);
    const acme = JSON.parse(first.stdout);
    expect(acme).toMatchObject({ name: 'Acme IT', status: 'pending' });
    const second = await cli(env, 'provider', 'create', '--name', 'Bolt', '--admin-email', 'ops@bolt.example');
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^Created provider Bolt \([0-9a-f-]{36}\); setup mail queued for ops@bolt\.example\.\n$/);

    // The newer mail is delivered; the older one, still pending, must still come first.
    await withEngine(async (engine, deps) => {
      expect((await engine.listProviders({ kind: 'system' })).map((p) => p.name).sort()).toEqual(['Acme IT', 'Bolt']);
      const queue = createMailQueue(deps);
      const due = await queue.claimDue(new Date(), { limit: 10, leaseMs: 60_000 });
      await queue.markSent(due.find((mail) => mail.recipient === 'ops@bolt.example')!, new Date());
    });

    const listed = await cli(env, 'mail', 'list', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    const mails = JSON.parse(listed.stdout);
    expect(mails.map((m: { to: string; status: string }) => [m.to, m.status])).toEqual([
      ['admin@acme.example', 'pending'],
      ['ops@bolt.example', 'sent'],
    ]);
    expect(mails[0].text).toMatch(/\/providers\/setup\?token=inv_/);

    const text = await cli(env, 'mail', 'list', '--unsent');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^pending .* to admin@acme\.example {2}Set up your Portico provider\n/);
    expect(text.stdout).toContain('/providers/setup?token=inv_');
    expect(text.stdout).not.toContain('ops@bolt.example');

    const one = await cli(env, 'mail', 'list', '--recipient', 'ops@bolt.example');
    expect(one.stdout.trim().split('\n')).toHaveLength(1);
  }, SLOW);

  it('provider create with a bad email is refused as wrong usage and queues nothing', async () => {
    const before = await withEngine((engine) => engine.listOutbox({ kind: 'system' }, {}));
    const refused = await cli(env, 'provider', 'create', '--name', 'Nope', '--admin-email', 'not-an-email');
    expect(refused).toEqual({ code: 2, stdout: '', stderr: 'portico provider create: --admin-email must be an email address\n' });
    expect(await withEngine((engine) => engine.listOutbox({ kind: 'system' }, {}))).toHaveLength(before.length);
  }, SLOW);

  it('config check says the database is reachable', async () => {
    const checked = await cli(env, 'config', 'check');
    expect(checked.code, checked.stdout).toBe(0);
    expect(checked.stdout).toMatch(/^configuration: ok\n/);
    expect(checked.stdout).toMatch(/\ndatabase: .* is reachable\n$/);
  }, SLOW);
});

describe('operator CLI without a database', () => {
  it('license verify runs offline, even with an invalid database setting: a license file that is not a license is invalid (1), no arguments is a usage error (2)', async () => {
    const folder = temporaryFolder();
    try {
      const license = join(folder, 'license.jwt');
      const jwks = join(folder, 'keys.json');
      writeFileSync(license, 'not-a-license');
      writeFileSync(jwks, JSON.stringify({ keys: [] }));
      const checked = await cli({ DATABASE_URL: 'mysql://nowhere' }, 'license', 'verify', license, '--jwks', jwks, '--installation', 'inst-1');
      expect(checked.code).toBe(1);
      expect(checked.stdout).toBe('invalid: malformed\n');
      const usage = await cli({}, 'license', 'verify');
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/Usage: portico license verify/);
      expect((await cli({}, '--help')).stdout).toContain('license verify');
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('config check reports every bad value and exits non-zero', async () => {
    const checked = await cli({ PORT: 'eighty', DATABASE_URL: 'mysql://db/portico', SMTP_URL: 'smtp://mail' }, 'config', 'check');
    expect(checked.code).toBe(2);
    expect(checked.stdout).toMatch(/^configuration: 2 problems\n/);
    expect(checked.stdout).toContain('  - PORT: ');
    expect(checked.stdout).toContain('  - DATABASE_URL: must be a postgres:// URL');
    expect(checked.stdout).toContain('database: not checked');
  });

  it('config check reports a database that does not answer', async () => {
    const checked = await cli({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', ENCRYPTION_KEY: TEST_ENCRYPTION_KEY }, 'config', 'check');
    expect(checked.code).toBe(1);
    expect(checked.stdout).toMatch(/\ndatabase: PostgreSQL at 127\.0\.0\.1:1\/none is not reachable: .+\n$/);
  }, SLOW);

  it('other commands refuse an invalid configuration, listing it', async () => {
    const refused = await cli({ PORT: 'eighty' }, 'mail', 'list');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^portico mail list: Invalid configuration:\n {2}- PORT: /);
  });

  it('a command against a DATA_DIR that does not exist is refused and creates nothing', async () => {
    const folder = temporaryFolder();
    try {
      const refused = await cli({ DATA_DIR: join(folder, 'elsewhere') }, 'token', 'rotate');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^portico token rotate: DATA_DIR .*elsewhere does not exist; run this where the server runs/);
      expect(refused.stdout).toBe('');
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('answers wrong usage with one sentence and exit status 2', async () => {
    expect(await cli({}, 'frobnicate')).toEqual({
      code: 2,
      stdout: '',
      stderr: 'portico: unknown command "frobnicate"; run `portico --help` for the list.\n',
    });
    expect((await cli({}, 'token')).stderr).toBe('portico token: a subcommand is needed; try `portico token rotate`.\n');
    expect((await cli({}, 'provider', 'create', '--nmae', 'x')).stderr).toBe(
      "portico provider create: Unknown option '--nmae'; run `portico provider create --help` for its options.\n",
    );
    expect((await cli({}, 'provider', 'create', '--admin-email', 'a@b.example')).stderr).toBe('portico provider create: --name is required\n');
    expect((await cli({})).code).toBe(2);
  });

  it('lists every command in --help and each command its options', async () => {
    const help = await cli({}, '--help');
    expect(help.code).toBe(0);
    for (const command of ['token rotate', 'provider create', 'mail list', 'db migrate', 'config check']) {
      expect(help.stdout).toContain(`  ${command} `);
    }
    const commandHelp = await cli({}, 'mail', 'list', '--help');
    expect(commandHelp.code).toBe(0);
    expect(commandHelp.stdout).toMatch(/^Usage: portico mail list \[--recipient <email>\] \[--unsent\] \[--json\]\n/);
    expect(commandHelp.stdout).toContain('--unsent');
    expect((await cli({}, 'help', 'mail', 'list')).stdout).toBe(commandHelp.stdout);
  });
});

describe('portico as a process', () => {
  const root = new URL('..', import.meta.url).pathname;
  const exec = promisify(execFile);
  /** The environment of the spawned CLI: this one's without Portico's settings, plus `env`. */
  const spawnEnv = (env: Record<string, string>) => {
    const inherited = { ...process.env };
    for (const key of ['DATABASE_URL', 'DATA_DIR', 'ENCRYPTION_KEY', 'SYSTEM_ADMIN_TOKEN', 'PORT', 'PUBLIC_URL', 'SMTP_URL']) delete inherited[key];
    return { ...inherited, ...env };
  };

  it('starts from its shebang entry, prints help, and exits non-zero on a bad setting', async () => {
    const help = await exec('npx', ['tsx', 'src/cli.ts', '--help'], { cwd: root, env: spawnEnv({}) });
    expect(help.stdout).toMatch(/^Usage: portico <command>/);

    const failed = await exec('npx', ['tsx', 'src/cli.ts', 'config', 'check'], { cwd: root, env: spawnEnv({ PORT: '70000' }) }).then(
      () => undefined,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stdout).toMatch(/^configuration: 1 problem\n {2}- PORT: /);
    expect(failed?.stderr).toBe('');
  }, SLOW);
});
