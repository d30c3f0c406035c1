/**
 * Dependencies point down only (docs/design.md): adapters use the engine's public surface, the
 * engine knows no protocol library, and storage imports nothing above it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;

function sources(dir: string): string[] {
  const abs = join(root, dir);
  return readdirSync(abs).flatMap((name) => {
    const path = join(abs, name);
    if (statSync(path).isDirectory()) return sources(relative(root, path));
    return path.endsWith('.ts') ? [path] : [];
  });
}

const importsOf = (file: string) =>
  [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);

const PROTOCOL_LIBRARIES = ['express', 'scimmy', 'scimmy-routers', 'ldapts', 'samlify', 'openid-client', 'nodemailer', 'pino-http'];

describe('layering', () => {
  it('keeps the engine free of protocol libraries and of the adapters', () => {
    for (const file of sources('src/membership')) {
      for (const spec of importsOf(file)) {
        expect(PROTOCOL_LIBRARIES, `${relative(root, file)} imports ${spec}`).not.toContain(spec);
        expect(spec, relative(root, file)).not.toMatch(/\/(http|scim|sso|sync|mail)\//);
      }
    }
  });

  it('lets adapters reach the engine only through its index and never touch SQL', () => {
    for (const dir of ['src/http', 'src/scim', 'src/sso', 'src/sync', 'src/mail']) {
      let files: string[] = [];
      try {
        files = sources(dir);
      } catch {
        continue; // an adapter that does not exist yet
      }
      for (const file of files) {
        for (const spec of importsOf(file)) {
          const where = `${relative(root, file)} imports ${spec}`;
          expect(spec.startsWith('drizzle-orm'), where).toBe(false);
          expect(spec, where).not.toMatch(/\/db\//);
          if (spec.includes('/membership/')) expect(spec, where).toMatch(/\/membership\/index\.js$/);
        }
      }
    }
  });

  it('keeps storage free of everything above it', () => {
    for (const file of sources('src/db')) {
      for (const spec of importsOf(file)) {
        expect(spec, relative(root, file)).not.toMatch(/\/(membership|http|scim|sso|sync|mail)\//);
      }
    }
  });

  it('reads process.env only in config and main', () => {
    for (const file of sources('src')) {
      const rel = relative(root, file);
      if (rel === 'src/config.ts' || rel === 'src/main.ts') continue;
      expect(readFileSync(file, 'utf8'), rel).not.toMatch(/process\.env/);
    }
  });
});
