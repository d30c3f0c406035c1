/**
 * One process per PGlite data folder. PGlite is PostgreSQL in single-user mode inside this
 * process: a second process on the same folder opens its own copy of the files, each sees only
 * what it wrote itself, and whichever writes last wins on disk. So the folder is locked with a
 * file created exclusively, holding the holder's pid and host: written aside, then hard-linked into
 * place (link fails on an existing name as O_EXCL does, and the lock is never seen half written).
 *
 * A lock whose holder is gone is taken over: on this host, a pid that is not alive (or is our own:
 * a container restarted with the same pid 1) no longer holds anything. A lock written on another
 * host is never taken over, since we cannot see that host's processes (a shared volume); the error
 * says which file to delete once that host is known to be stopped.
 */
import { closeSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

export const LOCK_FILE = 'portico.lock';

interface Holder {
  pid: number;
  host: string;
  since: string;
}

/** Another live process holds the folder. */
export class DataDirLocked extends Error {
  readonly code = 'DATA_DIR_LOCKED';
  constructor(
    readonly dataDir: string,
    readonly holder: Holder | undefined,
  ) {
    if (!holder) {
      super(`The data folder ${dataDir} has a lock file ${join(dataDir, LOCK_FILE)} that names no process; delete it once no Portico runs on that folder.`);
      this.name = 'DataDirLocked';
      return;
    }
    const where = holder.host === hostname() ? '' : ` on host ${holder.host}`;
    const remedy =
      holder.host === hostname()
        ? `stop it, or set DATA_DIR to another folder`
        : `stop it, or delete ${join(dataDir, LOCK_FILE)} once that host no longer runs Portico`;
    super(`The data folder ${dataDir} is in use by Portico process ${holder.pid}${where} (since ${holder.since}); ${remedy}.`);
    this.name = 'DataDirLocked';
  }
}

export interface DataDirLock {
  release(): void;
}

/** Takes the lock on `dataDir` (which must exist), or throws DataDirLocked naming the holder. */
export function lockDataDir(dataDir: string): DataDirLock {
  const folder = resolve(dataDir);
  const file = join(folder, LOCK_FILE);
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  // Later rounds follow the removal of a stale lock, or a lock that vanished as we read it.
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreate(file, me)) return held(file);
    const holder = readHolder(file);
    if (holder === 'gone') continue;
    if (holder === 'unreadable' || isAlive(holder) || holder.host !== me.host) {
      throw new DataDirLocked(folder, holder === 'unreadable' ? undefined : holder);
    }
    removeStale(file, holder);
  }
  const holder = readHolder(file);
  throw new DataDirLocked(folder, typeof holder === 'object' ? holder : undefined);
}

/** Creates the lock file with its content in one step: written aside, then hard-linked (fails if it exists). */
function tryCreate(file: string, me: Holder): boolean {
  const staged = `${file}.${process.pid}.new`;
  const fd = openSync(staged, 'w', 0o644);
  try {
    writeSync(fd, `${JSON.stringify(me)}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(staged, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    if ((error as NodeJS.ErrnoException).code === 'EPERM' || (error as NodeJS.ErrnoException).code === 'ENOTSUP') {
      // A file system without hard links: an exclusive create, then the content.
      return createExclusive(file, me);
    }
    throw error;
  } finally {
    unlinkSync(staged);
  }
}

function createExclusive(file: string, me: Holder): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, `${JSON.stringify(me)}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readHolder(file: string): Holder | 'gone' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<Holder>;
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') {
      return { pid: parsed.pid, host: parsed.host, since: String(parsed.since ?? 'unknown') };
    }
  } catch {
    // fall through
  }
  return 'unreadable';
}

function isAlive(holder: Holder): boolean {
  if (holder.host !== hostname()) return true;
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Moves the stale lock aside (rename is atomic, so of two starters only one moves it) and deletes
 * it, unless what was moved is not the stale lock but a fresh one another starter just made: that
 * is put back.
 */
function removeStale(file: string, stale: Holder): void {
  const aside = `${file}.${process.pid}.stale`;
  try {
    renameSync(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const moved = readHolder(aside);
  if (typeof moved === 'object' && (moved.pid !== stale.pid || moved.host !== stale.host)) {
    try {
      linkSync(aside, file);
    } catch {
      // Someone made a newer lock meanwhile; theirs stands.
    }
  }
  unlinkSync(aside);
}

function held(file: string): DataDirLock {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    // Only our own lock is removed (a stale-lock takeover by another process cannot have happened
    // while we live, but a hand-deleted and re-made lock is not ours to remove).
    const holder = readHolder(file);
    if (typeof holder === 'object' && holder.pid === process.pid && holder.host === hostname()) {
      try {
        unlinkSync(file);
      } catch {
        // Already gone.
      }
    }
  };
  // An exit without a shutdown (process.exit after a failed start, an uncaught exception) releases it too.
  process.on('exit', release);
  return { release };
}
