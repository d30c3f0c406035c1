/**
 * The bench's directory: the tests' slapd (test/support/slapd.ts) with `member` indexed, loaded
 * with a generated LDIF that is streamed to a file and never held in memory, since the bench
 * process is the Portico process whose peak RSS is measured.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { startSlapd, type Slapd } from '../test/support/slapd.js';

export type BenchSlapd = Slapd & { peopleDn: string; groupsDn: string };

export const userDn = (i: number, peopleDn: string) => `uid=user${i},${peopleDn}`;

/** Member k of group g: distinct within a group, spread so that each user is in ~groups*perGroup/users groups. */
export function groupMembers(g: number, users: number, perGroup: number): number[] {
  const n = Math.min(perGroup, users);
  const stride = Math.max(1, Math.floor(users / n));
  return Array.from({ length: n }, (_, k) => (g * 97 + k * stride) % users);
}

/** Writes the LDIF to `file` through a stream (back-pressure respected). */
async function writeLdif(file: string, opts: { peopleDn: string; groupsDn: string; users: number; groups: number; perGroup: number }) {
  const out = createWriteStream(file);
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
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
  const peopleDn = `ou=people,${suffix}`;
  const groupsDn = `ou=groups,${suffix}`;
  const started = performance.now();
  const slapd = await startSlapd({
    suffix,
    adminPassword: 'bench-secret',
    indexes: ['member'],
    writeBulkLdif: (file) => writeLdif(file, { peopleDn, groupsDn, ...opts }),
  });
  return { ...slapd, peopleDn, groupsDn, loadSeconds: (performance.now() - started) / 1000 };
}
