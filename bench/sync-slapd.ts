/**
 * The bench's slapd: the same server as test/support/slapd.ts (mdb, memberof and refint overlays,
 * `slapadd -q` before start), but the LDIF is streamed to a file and never held in memory, since
 * the bench process is the Portico process whose peak RSS is measured.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

export interface BenchSlapd {
  url: string;
  port: number;
  suffix: string;
  adminDn: string;
  adminPassword: string;
  peopleDn: string;
  groupsDn: string;
  dir: string;
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

export const userDn = (i: number, peopleDn: string) => `uid=user${i},${peopleDn}`;

/** Member k of group g: distinct within a group, spread so that each user is in ~groups*perGroup/users groups. */
export function groupMembers(g: number, users: number, perGroup: number): number[] {
  const n = Math.min(perGroup, users);
  const stride = Math.max(1, Math.floor(users / n));
  return Array.from({ length: n }, (_, k) => (g * 97 + k * stride) % users);
}

/** Writes the LDIF to `file` through a stream (back-pressure respected). */
async function writeLdif(file: string, opts: { suffix: string; peopleDn: string; groupsDn: string; users: number; groups: number; perGroup: number }) {
  const out = createWriteStream(file);
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
  const dc = /^dc=([^,]+)/i.exec(opts.suffix)![1]!;
  await write(`dn: ${opts.suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: ${dc}\no: ${dc}\n\n`);
  await write(`dn: ${opts.peopleDn}\nobjectClass: organizationalUnit\nou: people\n\n`);
  await write(`dn: ${opts.groupsDn}\nobjectClass: organizationalUnit\nou: groups\n\n`);
  let chunk = '';
  for (let i = 0; i < opts.users; i++) {
    chunk +=
      `dn: ${userDn(i, opts.peopleDn)}\nobjectClass: inetOrgPerson\nuid: user${i}\ncn: User ${i}\nsn: ${i}\n` +
      `mail: user${i}@bench.example\n\n`;
    if (chunk.length > 1 << 16) {
      await write(chunk);
      chunk = '';
    }
  }
  for (let g = 0; g < opts.groups; g++) {
    chunk += `dn: cn=group${g},${opts.groupsDn}\nobjectClass: groupOfNames\ncn: group${g}\n`;
    for (const m of groupMembers(g, opts.users, opts.perGroup)) chunk += `member: ${userDn(m, opts.peopleDn)}\n`;
    chunk += '\n';
    if (chunk.length > 1 << 16) {
      await write(chunk);
      chunk = '';
    }
  }
  await write(chunk);
  out.end();
  await once(out, 'finish');
}

export async function startBenchSlapd(opts: { users: number; groups: number; perGroup: number }): Promise<BenchSlapd & { loadSeconds: number }> {
  const suffix = 'dc=bench,dc=example';
  const adminDn = `cn=admin,${suffix}`;
  const adminPassword = 'bench-secret';
  const peopleDn = `ou=people,${suffix}`;
  const groupsDn = `ou=groups,${suffix}`;
  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-slapd-'));
  mkdirSync(join(dir, 'data'));
  const conf = [
    ...['core', 'cosine', 'inetorgperson', 'nis'].map((name) => `include /etc/ldap/schema/${name}.schema`),
    `pidfile ${dir}/slapd.pid`,
    `argsfile ${dir}/slapd.args`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'moduleload memberof',
    'moduleload refint',
    'sizelimit unlimited',
    'database mdb',
    'maxsize 4294967296',
    `suffix "${suffix}"`,
    `rootdn "${adminDn}"`,
    `rootpw ${adminPassword}`,
    `directory ${dir}/data`,
    'index objectClass eq',
    'index entryUUID eq',
    'index member eq',
    'overlay memberof',
    'overlay refint',
    'refint_attributes member uniqueMember',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'slapd.conf'), conf);
  const ldif = join(dir, 'seed.ldif');
  const t0 = performance.now();
  await writeLdif(ldif, { suffix, peopleDn, groupsDn, ...opts });
  execFileSync('/usr/sbin/slapadd', ['-q', '-f', join(dir, 'slapd.conf'), '-l', ldif], { stdio: 'pipe' });
  const loadSeconds = (performance.now() - t0) / 1000;
  rmSync(ldif);

  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  const child = spawn('/usr/sbin/slapd', ['-f', join(dir, 'slapd.conf'), '-h', `${url}/`, '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`slapd exited with ${child.exitCode}:\n${output}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (open) break;
    if (Date.now() > deadline) throw new Error(`slapd did not listen:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
  return {
    url,
    port,
    suffix,
    adminDn,
    adminPassword,
    peopleDn,
    groupsDn,
    dir,
    loadSeconds,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
