import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, loadConfig } from '../src/config.js';

describe('configuration', () => {
  it('applies the documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      publicUrl: 'http://localhost:8080',
      databaseUrl: undefined,
      dataDir: './data',
      smtpUrl: undefined,
      scheduler: true,
      bodyLimit: '100kb',
    });
  });

  it('derives PUBLIC_URL from PORT and strips a trailing slash from a given one', () => {
    expect(loadConfig({ PORT: '9000' }).publicUrl).toBe('http://localhost:9000');
    expect(loadConfig({ PUBLIC_URL: 'https://portico.example.com/' }).publicUrl).toBe('https://portico.example.com');
  });

  it('requires ENCRYPTION_KEY with DATABASE_URL, and says how to make one', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres://db/portico' })).toThrow(/ENCRYPTION_KEY: required with DATABASE_URL.*openssl rand/);
    expect(loadConfig({ DATABASE_URL: 'postgres://db/portico', ENCRYPTION_KEY: 'k'.repeat(32) }).databaseUrl).toBe('postgres://db/portico');
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', SMTP_URL: '' })).toMatchObject({ databaseUrl: undefined, smtpUrl: undefined });
  });

  it('refuses bad values with a message naming every bad variable', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', SCHEDULER: 'maybe', SYSTEM_ADMIN_TOKEN: 'short' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    for (const name of ['PORT', 'DATABASE_URL', 'SCHEDULER', 'SYSTEM_ADMIN_TOKEN']) expect(message).toContain(name);
    expect(message).toContain('openssl rand');
  });

  it('documents exactly the variables of the schema in the README table', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Walkthrough'));
    const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]).sort();
    expect(documented).toEqual(Object.keys(configSchema.shape).sort());
  });

  it('gives every variable a description', () => {
    for (const [name, schema] of Object.entries(configSchema.shape)) {
      expect(schema.description, name).toBeTruthy();
    }
  });
});
