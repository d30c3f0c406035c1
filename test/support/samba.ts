/**
 * A throwaway Samba 4 Active Directory DC for integration tests (directory-notes.md, "Test
 * servers"): `samba-tool domain provision` into a temp dir (no DNS, 127.0.0.1 only, simple binds
 * allowed), then `samba -i -M single` as a child in its own process group, stopped by killing
 * that group. Samba runs as root on the fixed AD ports (389, 636, 3268, 3269), so one instance per
 * machine: a lock file guards it, and test/connectors/active-directory.int.test.ts is its only user.
 * Needs `samba samba-ad-dc` (.ci/run installs them).
 *
 * LDAPS uses a certificate made here by `openssl` for localhost and 127.0.0.1: the one Samba
 * generates by itself (private/tls) names only the DC's FQDN (`CN=DC1.portico.test`, no SAN),
 * which does not resolve here, so a connection by IP or localhost cannot verify it.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';

export const SAMBA_BINARY = '/usr/sbin/samba';
export const SAMBA_TOOL = '/usr/bin/samba-tool';
const LOCK_FILE = join(tmpdir(), 'portico-samba-ad.lock');
const AD_PORTS = [389, 636, 3268, 3269];

/** Why Samba AD cannot run on this machine; undefined when it can. */
export const sambaProblem: string | undefined = !existsSync(SAMBA_BINARY) || !existsSync(SAMBA_TOOL)
  ? 'Samba AD is not installed (apt-get install -y samba samba-ad-dc)'
  : process.getuid?.() !== 0
    ? 'Samba AD needs root (it provisions as root and listens on port 389)'
    : undefined;

export interface SambaOptions {
  /** Upper-case DNS realm; the base DN is made from it (`PORTICO.TEST` → `DC=portico,DC=test`). */
  realm?: string;
  /** NetBIOS domain name. */
  domain?: string;
  /** Must meet AD's default complexity rules. */
  adminPassword?: string;
}

export interface SambaDc {
  realm: string;
  baseDn: string;
  adminDn: string;
  adminPassword: string;
  url: string;
  ldapsUrl: string;
  /** PEM of the CA that signed the DC's LDAPS certificate (localhost, 127.0.0.1). */
  caPem: string;
  /** PEM of an unrelated CA: the DC's certificate does not chain to it. */
  otherCaPem: string;
  dir: string;
  /** How long provisioning and the first successful bind took, in ms. */
  startupMs: number;
  stop(): Promise<void>;
}

const run = promisify(execFile);

function openssl(dir: string, args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function makeTls(dir: string) {
  for (const name of ['ca', 'other-ca']) {
    openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`]);
  }
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.pem']);
}

/** Takes the machine-wide lock, or throws naming the live holder; a lock left by a dead process is taken over. */
function acquireLock(): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(LOCK_FILE, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(LOCK_FILE, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(LOCK_FILE, 'utf8').trim());
      let alive = false;
      try {
        if (holder > 0) process.kill(holder, 0);
        alive = holder > 0;
      } catch {
        alive = false;
      }
      if (alive) throw new Error(`another Samba AD test instance runs (pid ${holder}, ${LOCK_FILE}): one per machine`);
      rmSync(LOCK_FILE, { force: true });
    }
  }
  throw new Error(`could not take ${LOCK_FILE}`);
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Adds lines to the end of smb.conf's [global] section (later lines win). */
function extendGlobal(conf: string, lines: string[]): string {
  const sections = conf.split(/^(?=\[)/m);
  const global = sections.findIndex((s) => s.startsWith('[global]'));
  sections[global] = `${sections[global]!.trimEnd()}\n${lines.map((l) => `\t${l}`).join('\n')}\n\n`;
  return sections.join('');
}

async function waitForBind({ url, adminDn, adminPassword, child, log }: {
  url: string;
  adminDn: string;
  adminPassword: string;
  child: ChildProcess;
  log: () => string;
}): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`samba exited (${child.exitCode ?? child.signalCode}):\n${log()}`);
    const client = new Client({ url, connectTimeout: 1000, timeout: 5000 });
    try {
      await client.bind(adminDn, adminPassword);
      return;
    } catch (error) {
      last = error;
    } finally {
      await client.unbind().catch(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`samba did not accept a bind within 30 s (${String(last)}):\n${log()}`);
}

export async function startSamba(options: SambaOptions = {}): Promise<SambaDc> {
  if (sambaProblem) throw new Error(sambaProblem);
  const started = performance.now();
  const realm = (options.realm ?? 'PORTICO.TEST').toUpperCase();
  const domain = options.domain ?? 'PORTICO';
  const adminPassword = options.adminPassword ?? 'Portico-Adm1n-Secret!';
  const baseDn = realm.toLowerCase().split('.').map((part) => `DC=${part}`).join(',');
  const adminDn = `CN=Administrator,CN=Users,${baseDn}`;

  const release = acquireLock();
  let dir: string | undefined;
  let child: ChildProcess | undefined;
  const killGroup = (signal: NodeJS.Signals) => {
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is gone already
    }
  };
  // If the test runner exits without stop(), the DC must not outlive it (it holds the fixed ports).
  const onExit = () => killGroup('SIGKILL');
  try {
    for (const port of AD_PORTS) {
      if (await portOpen(port)) throw new Error(`127.0.0.1:${port} is in use: stop the Samba (or other LDAP) server holding it`);
    }
    dir = mkdtempSync(join(tmpdir(), 'portico-samba-'));
    const tls = join(dir, 'tls');
    mkdirSync(tls);
    makeTls(tls);
    // --host-name: the NetBIOS name is at most 15 characters, and a machine's own hostname may be longer.
    await run(
      SAMBA_TOOL,
      [
        'domain', 'provision',
        `--targetdir=${dir}`,
        '--use-rfc2307',
        '--server-role=dc',
        '--dns-backend=NONE',
        '--host-ip=127.0.0.1',
        '--host-name=dc1',
        `--realm=${realm}`,
        `--domain=${domain}`,
        `--adminpass=${adminPassword}`,
        '--option=ldap server require strong auth = no',
        '--option=interfaces = lo',
        '--option=bind interfaces only = yes',
      ],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
    const confPath = join(dir, 'etc', 'smb.conf');
    // Provision drops some --option values from the smb.conf it writes; set them where they stick.
    writeFileSync(
      confPath,
      extendGlobal(readFileSync(confPath, 'utf8'), [
        'ldap server require strong auth = no',
        'interfaces = lo',
        'bind interfaces only = yes',
        // LDAP only: no SMB, Kerberos, NetBIOS, RPC or DNS ports, and a faster start.
        'server services = ldap',
        `log file = ${join(dir, 'log.%m')}`,
        // Samba's selftest setting: no fsync per ldb transaction (seeding is many small writes).
        'ldb:nosync = true',
        'tls enabled = yes',
        `tls keyfile = ${join(tls, 'server.key')}`,
        `tls certfile = ${join(tls, 'server.pem')}`,
        `tls cafile = ${join(tls, 'ca.pem')}`,
      ]),
    );

    let output = '';
    child = spawn(SAMBA_BINARY, ['-i', '-M', 'single', '-s', confPath], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    process.once('exit', onExit);
    const url = 'ldap://127.0.0.1:389';
    await waitForBind({ url, adminDn, adminPassword, child, log: () => output });

    const running = child;
    const exited = new Promise<void>((resolve) => {
      if (running.exitCode !== null || running.signalCode !== null) resolve();
      else running.once('exit', () => resolve());
    });
    const home = dir;
    return {
      realm,
      baseDn,
      adminDn,
      adminPassword,
      url,
      ldapsUrl: 'ldaps://127.0.0.1:636',
      caPem: readFileSync(join(tls, 'ca.pem'), 'utf8'),
      otherCaPem: readFileSync(join(tls, 'other-ca.pem'), 'utf8'),
      dir: home,
      startupMs: performance.now() - started,
      async stop() {
        killGroup('SIGTERM');
        const timer = setTimeout(() => killGroup('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
        process.removeListener('exit', onExit);
        rmSync(home, { recursive: true, force: true });
        release();
      },
    };
  } catch (error) {
    killGroup('SIGKILL');
    process.removeListener('exit', onExit);
    if (dir) rmSync(dir, { recursive: true, force: true });
    release();
    throw error;
  }
}
