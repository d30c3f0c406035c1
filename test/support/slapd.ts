/**
 * A throwaway OpenLDAP `slapd` for integration tests (directory-notes.md, "Test servers"): a temp
 * dir, 127.0.0.1 on free ports, an mdb database with the memberof and refint overlays, data loaded
 * by `slapadd -q` before start, optional accounts with AD-like limits, optional TLS with a private
 * CA made here by `openssl` (ldaps:// and StartTLS). Needs `slapd ldap-utils` (.ci/run installs them).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SLAPD_BINARY = '/usr/sbin/slapd';
export const slapdAvailable = existsSync(SLAPD_BINARY) && existsSync('/usr/sbin/slapadd');

export interface LimitedAccount {
  /** The account's RDN value under the suffix: `cn=<name>,<suffix>`. */
  name: string;
  password: string;
  /** The `limits` clause, e.g. `size.soft=1000 size.hard=1000 size.prtotal=unlimited`. */
  limits: string;
}

export interface SlapdOptions {
  suffix?: string;
  adminPassword?: string;
  /** LDIF loaded before start (the suffix entry is added for you). */
  ldif?: string;
  limitedAccounts?: LimitedAccount[];
  tls?: boolean;
  /**
   * Writes a large LDIF (without the suffix entry) to the file it is given, loaded by a second
   * `slapadd -q` and deleted: the bench streams 100k entries this way, never holding them in memory.
   */
  writeBulkLdif?: (file: string) => Promise<void>;
  /** Attributes indexed `eq` besides objectClass and entryUUID (e.g. `member` for a large directory). */
  indexes?: string[];
}

export interface Slapd {
  suffix: string;
  adminDn: string;
  adminPassword: string;
  url: string;
  /** ldaps:// URL when started with TLS. */
  ldapsUrl: string | undefined;
  /** PEM of the private CA when started with TLS. */
  caPem: string | undefined;
  /** PEM of an unrelated CA: a server certificate does not chain to it. */
  otherCaPem: string | undefined;
  port: number;
  dir: string;
  /** Kills the server at once (SIGKILL), as a crash would. */
  kill(): void;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function openssl(dir: string, args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function makeCa(dir: string, name: string) {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`]);
}

function makeTls(dir: string) {
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.pem']);
}

function config({ dir, suffix, adminDn, adminPassword, limitedAccounts, tls, indexes }: {
  dir: string;
  suffix: string;
  adminDn: string;
  adminPassword: string;
  limitedAccounts: LimitedAccount[];
  tls: boolean;
  indexes: string[];
}): string {
  const schema = ['core', 'cosine', 'inetorgperson', 'nis'].map((name) => `include /etc/ldap/schema/${name}.schema`);
  return [
    ...schema,
    `pidfile ${dir}/slapd.pid`,
    `argsfile ${dir}/slapd.args`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'moduleload memberof',
    'moduleload refint',
    ...(tls ? [`TLSCACertificateFile ${dir}/ca.pem`, `TLSCertificateFile ${dir}/server.pem`, `TLSCertificateKeyFile ${dir}/server.key`] : []),
    'database mdb',
    'maxsize 4294967296',
    `suffix "${suffix}"`,
    `rootdn "${adminDn}"`,
    `rootpw ${adminPassword}`,
    `directory ${dir}/data`,
    'index objectClass eq',
    'index entryUUID eq',
    ...indexes.map((attribute) => `index ${attribute} eq`),
    ...limitedAccounts.map((account) => `limits dn.exact="cn=${account.name},${suffix}" ${account.limits}`),
    'overlay memberof',
    'overlay refint',
    'refint_attributes member uniqueMember',
    '',
  ].join('\n');
}

function suffixEntry(suffix: string): string {
  const dc = /^dc=([^,]+)/i.exec(suffix)?.[1] ?? 'example';
  return `dn: ${suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: ${dc}\no: ${dc}\n`;
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`slapd exited with ${child.exitCode}:\n${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`slapd did not listen on ${port} within 15 s:\n${log()}`);
}

export async function startSlapd(options: SlapdOptions = {}): Promise<Slapd> {
  const suffix = options.suffix ?? 'dc=example,dc=test';
  const adminDn = `cn=admin,${suffix}`;
  const adminPassword = options.adminPassword ?? 'admin-secret';
  const limitedAccounts = options.limitedAccounts ?? [];
  const tls = options.tls ?? false;
  const dir = mkdtempSync(join(tmpdir(), 'portico-slapd-'));
  mkdirSync(join(dir, 'data'));
  if (tls) makeTls(dir);
  writeFileSync(join(dir, 'slapd.conf'), config({ dir, suffix, adminDn, adminPassword, limitedAccounts, tls, indexes: options.indexes ?? [] }));
  const accounts = limitedAccounts
    .map((a) => `dn: cn=${a.name},${suffix}\nobjectClass: person\ncn: ${a.name}\nsn: ${a.name}\nuserPassword: ${a.password}\n`)
    .join('\n');
  writeFileSync(join(dir, 'seed.ldif'), [suffixEntry(suffix), accounts, options.ldif ?? ''].filter(Boolean).join('\n'));
  execFileSync('/usr/sbin/slapadd', ['-q', '-f', join(dir, 'slapd.conf'), '-l', join(dir, 'seed.ldif')], { stdio: 'pipe' });
  if (options.writeBulkLdif) {
    const bulk = join(dir, 'bulk.ldif');
    await options.writeBulkLdif(bulk);
    execFileSync('/usr/sbin/slapadd', ['-q', '-f', join(dir, 'slapd.conf'), '-l', bulk], { stdio: 'pipe' });
    rmSync(bulk);
  }

  const port = await freePort();
  const ldapsPort = tls ? await freePort() : undefined;
  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = ldapsPort ? `ldaps://127.0.0.1:${ldapsPort}` : undefined;
  const listen = [`${url}/`, ...(ldapsUrl ? [`${ldapsUrl}/`] : [])].join(' ');
  // -d 0: stay in the foreground, so the child is the server and killing it kills slapd.
  const child = spawn(SLAPD_BINARY, ['-f', join(dir, 'slapd.conf'), '-h', listen, '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitForPort(port, child, () => output);
  if (ldapsPort) await waitForPort(ldapsPort, child, () => output);

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    suffix,
    adminDn,
    adminPassword,
    url,
    ldapsUrl,
    caPem: tls ? readFileSync(join(dir, 'ca.pem'), 'utf8') : undefined,
    otherCaPem: tls ? readFileSync(join(dir, 'other-ca.pem'), 'utf8') : undefined,
    port,
    dir,
    kill() {
      child.kill('SIGKILL');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CuttingProxy {
  url: string;
  /** Bytes the server sent through the proxy so far. */
  bytesFromServer(): number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of a server that resets every connection once the server has sent more
 * than `cutAfterBytes`: a connection lost in the middle of a paged read.
 */
export async function startCuttingProxy({ targetPort, cutAfterBytes }: { targetPort: number; cutAfterBytes: number }): Promise<CuttingProxy> {
  let total = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((downstream) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(downstream).add(upstream);
    let sent = 0;
    let cut = false;
    downstream.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (cut) return;
      sent += chunk.length;
      total += chunk.length;
      if (sent > cutAfterBytes) {
        cut = true;
        // Forward part of the chunk, then reset both sides: the client sees a half-read page.
        downstream.write(chunk.subarray(0, Math.floor(chunk.length / 2)), () => {
          downstream.resetAndDestroy();
          upstream.destroy();
        });
        return;
      }
      downstream.write(chunk);
    });
    for (const socket of [downstream, upstream]) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        downstream.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `ldap://127.0.0.1:${port}`,
    bytesFromServer: () => total,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
