/**
 * One process per PGlite folder (issue 10, point 2): the lock file names its holder, a live holder
 * keeps the folder, a dead one on this host gives it up, and a holder on another host is never
 * second-guessed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirLocked, LOCK_FILE, lockDataDir } from '../../src/db/lock.js';

let folder: string;
beforeEach(() => {
  folder = mkdtempSync(join(tmpdir(), 'portico-lock-'));
});
afterEach(() => rmSync(folder, { recursive: true, force: true }));

const lockFile = () => join(folder, LOCK_FILE);
const writeHolder = (holder: { pid: number; host: string }) =>
  writeFileSync(lockFile(), JSON.stringify({ ...holder, since: '2026-01-01T00:00:00.000Z' }));
const holderOf = () => JSON.parse(readFileSync(lockFile(), 'utf8')) as { pid: number; host: string };

/** The pid of a process that has exited (and so, on this host, holds nothing). */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

describe('the data folder lock', () => {
  it('is a file naming this process and host, removed on release', () => {
    const lock = lockDataDir(folder);
    expect(holderOf()).toMatchObject({ pid: process.pid, host: hostname() });
    lock.release();
    expect(existsSync(lockFile())).toBe(false);
  });

  it('held by a live process on this host, is refused with a sentence naming the folder and its pid', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      writeHolder({ pid: other.pid!, host: hostname() });
      let refused: unknown;
      try {
        lockDataDir(folder);
      } catch (error) {
        refused = error;
      }
      expect(refused).toBeInstanceOf(DataDirLocked);
      expect((refused as Error).message).toMatch(
        new RegExp(`^The data folder ${folder} is in use by Portico process ${other.pid} \\(since .*\\); stop it, or set DATA_DIR to another folder\\.$`),
      );
      expect(holderOf().pid).toBe(other.pid);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('left by a process that is gone, is taken over', () => {
    writeHolder({ pid: deadPid(), host: hostname() });
    const lock = lockDataDir(folder);
    expect(holderOf()).toMatchObject({ pid: process.pid, host: hostname() });
    lock.release();
  });

  it('naming our own pid (a restarted container is pid 1 again), is taken over', () => {
    writeHolder({ pid: process.pid, host: hostname() });
    const lock = lockDataDir(folder);
    expect(holderOf().pid).toBe(process.pid);
    lock.release();
  });

  it('held on another host, is refused, and the sentence says which file to delete once that host is stopped', () => {
    writeHolder({ pid: deadPid(), host: 'elsewhere.example' });
    expect(() => lockDataDir(folder)).toThrow(
      new RegExp(`on host elsewhere\\.example .*delete ${join(folder, LOCK_FILE)} once that host no longer runs Portico\\.$`),
    );
    expect(holderOf().host).toBe('elsewhere.example');
  });

  it('that is not ours (unreadable), is refused rather than removed', () => {
    writeFileSync(lockFile(), 'garbage');
    expect(() => lockDataDir(folder)).toThrow(DataDirLocked);
    expect(readFileSync(lockFile(), 'utf8')).toBe('garbage');
  });

  it('release leaves a lock that is no longer ours in place', () => {
    const lock = lockDataDir(folder);
    writeHolder({ pid: deadPid(), host: hostname() });
    lock.release();
    expect(existsSync(lockFile())).toBe(true);
  });
});
