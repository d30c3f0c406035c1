/**
 * The compiled server as a supervisor runs it (issue 10, points 1–3): `npm start` launches one
 * process tree that a SIGTERM to its pid stops gracefully; a second start on the same PGlite folder
 * is refused; and each start-up failure is one sentence naming the setting to change, with a
 * non-zero exit status and no stack trace.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAIN,
  descendants,
  ensureBuilt,
  freePort,
  isAlive,
  portOpen,
  run,
  serverEnv,
  waitForHealth,
  type Run,
} from './built-server.js';

const BUILD_TIMEOUT = 300_000;
const folders: string[] = [];
const tempFolder = () => {
  const folder = mkdtempSync(join(tmpdir(), 'portico-start-'));
  folders.push(folder);
  return folder;
};

beforeAll(() => ensureBuilt(), BUILD_TIMEOUT);
afterAll(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

/** What a start that failed printed: exactly one line, and no stack frame. */
function expectOneSentence(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/^\s+at /m);
}

describe('npm start', () => {
  let port: number;
  let dataDir: string;
  let started: Run;

  beforeAll(async () => {
    port = await freePort();
    dataDir = tempFolder();
    started = run('npm', ['start'], serverEnv({ PORT: String(port), DATA_DIR: dataDir }));
    await waitForHealth(port, started);
  }, 120_000);

  afterAll(() => {
    // Only if a test failed before stopping it.
    for (const pid of descendants(started.child.pid!)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });

  it('a second start on the same DATA_DIR fails with a sentence naming the folder and the process holding it', async () => {
    const holder = JSON.parse(readFileSync(join(dataDir, 'portico.lock'), 'utf8')) as { pid: number };
    expect(descendants(started.child.pid!)).toContain(holder.pid);

    const second = run(process.execPath, [MAIN], serverEnv({ PORT: String(await freePort()), DATA_DIR: dataDir }));
    const { code } = await second.exited;

    expect(code).not.toBe(0);
    expectOneSentence(second.stderr(), new RegExp(`^The data folder ${dataDir} is in use by Portico process ${holder.pid} .*set DATA_DIR`));
    // The first one is untouched: still serving, still holding the lock.
    expect(await portOpen(port)).toBe(true);
    expect(existsSync(join(dataDir, 'portico.lock'))).toBe(true);
  }, 60_000);

  it('a SIGTERM to the pid npm start launched stops the server gracefully: the port closes, the process tree exits, the log says so', async () => {
    const tree = descendants(started.child.pid!);
    expect(tree.length).toBeGreaterThan(0);

    process.kill(started.child.pid!, 'SIGTERM');
    const { code } = await started.exited;

    expect(code).toBe(0);
    expect(await portOpen(port)).toBe(false);
    expect(tree.filter(isAlive)).toEqual([]);
    expect(started.stdout()).toMatch(/"msg":"shutting down"/);
    expect(started.stdout()).toMatch(/"msg":"stopped"/);
    expect(existsSync(join(dataDir, 'portico.lock'))).toBe(false);
  }, 60_000);
});

describe('a start that cannot go on prints one sentence naming the setting to change and exits non-zero', () => {
  const start = async (settings: Record<string, string>) => {
    const started = run(process.execPath, [MAIN], serverEnv(settings));
    return { ...(await started.exited), stderr: started.stderr() };
  };

  it('a busy port names PORT', async () => {
    const busy: Server = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => busy.listen(port, resolve));
    try {
      const { code, stderr } = await start({ PORT: String(port), DATA_DIR: 'memory://' });
      expect(code).toBe(1);
      expectOneSentence(stderr, new RegExp(`^Port ${port} is already in use by another process; set PORT to a free port`));
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  }, 60_000);

  it('a DATABASE_URL nobody answers names DATABASE_URL, and not its password', async () => {
    const port = await freePort();
    const { code, stderr } = await start({
      PORT: String(await freePort()),
      DATABASE_URL: `postgres://portico:s3cret@127.0.0.1:${port}/portico`,
      ENCRYPTION_KEY: 'k'.repeat(44),
    });
    expect(code).toBe(1);
    expectOneSentence(stderr, new RegExp(`^PostgreSQL at 127.0.0.1:${port} does not answer \\(ECONNREFUSED\\); check the host and port in DATABASE_URL`));
    expect(stderr).not.toContain('s3cret');
  }, 60_000);

  it('a DATA_DIR that cannot be a folder names DATA_DIR', async () => {
    const file = join(tempFolder(), 'not-a-folder');
    writeFileSync(file, '');
    const { code, stderr } = await start({ PORT: String(await freePort()), DATA_DIR: file });
    expect(code).toBe(1);
    expectOneSentence(stderr, new RegExp(`^The data folder ${file} cannot be used \\(E[A-Z]+: .*\\); set DATA_DIR to a folder`));
  }, 60_000);

  it('a bad config value names the variable', async () => {
    const { code, stderr } = await start({ PORT: 'eighty', DATA_DIR: 'memory://' });
    expect(code).toBe(2);
    expectOneSentence(stderr, /^Invalid configuration: PORT: /);
  }, 60_000);
});
