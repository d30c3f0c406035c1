/**
 * Directory sync test doubles for what cannot run here yet or is not under test: a source that
 * answers a fixed snapshot (or a read failure), a settings resolver standing in for the presets
 * (src/sync/presets.ts), and a reconcile standing in for src/sync/reconcile.ts. The engine, the
 * database and the runner are real.
 */
import type { ReconcileDirectory, ReconcileResult, ResolveSettings } from '../../src/sync/runner.js';
import type { ConnectionSettings } from '../../src/sync/settings.js';
import { DirectoryReadError, type DirectorySnapshot, type DirectoryUser, type SourceFactory } from '../../src/sync/source.js';

/** An Active Directory connection as an MSP would PUT it (LDAPS, the AD preset, a 6-hourly cron). */
export const AD_CONFIG = {
  kind: 'activeDirectory',
  url: 'ldaps://dc1.corp.example.test:636',
  bindDn: 'CN=portico-sync,OU=Service Accounts,DC=corp,DC=example,DC=test',
  bindPassword: 'ad-bind-secret-Plaintext-1',
  preset: 'activeDirectory',
  users: { baseDn: 'OU=Staff,DC=corp,DC=example,DC=test' },
  groups: { baseDn: 'OU=Groups,DC=corp,DC=example,DC=test' },
  schedule: { cron: '0 */6 * * *' },
  options: { disabledUsers: 'revoke', removeMissing: true, shrinkGuardPercent: 10 },
} as const;

/** An OpenLDAP connection (StartTLS, posixGroup, a disabled rule, every 30 minutes). */
export const OPENLDAP_CONFIG = {
  kind: 'ldap',
  url: 'ldap://ldap.example.test:389',
  bindDn: 'cn=sync,dc=example,dc=test',
  bindPassword: 'openldap-bind-secret-Plaintext-2',
  tls: { startTls: true },
  preset: 'openldap',
  users: { baseDn: 'ou=people,dc=example,dc=test', disabledFilter: '(pwdAccountLockedTime=*)' },
  groups: { baseDn: 'ou=groups,dc=example,dc=test', memberAttributes: ['member', 'memberUid'] },
  schedule: { intervalMinutes: 30 },
} as const;

export const user = (n: number, overrides: Partial<DirectoryUser> = {}): DirectoryUser => ({
  externalId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  dn: `uid=user${n},ou=people,dc=example,dc=test`,
  email: `user${n}@example.test`,
  name: `User ${n}`,
  disabled: false,
  ...overrides,
});

/** A factory whose sources answer `snapshot` (or throw `failure`); `reads` counts reads, `settings` keeps what it was built with. */
export function fixedSource(
  snapshot: DirectorySnapshot,
  options: { failure?: DirectoryReadError } = {},
): SourceFactory & { reads: number; settings: ConnectionSettings[] } {
  const factory = Object.assign(
    (settings: ConnectionSettings) => {
      factory.settings.push(settings);
      return {
        async read() {
          factory.reads += 1;
          if (options.failure) throw options.failure;
          return structuredClone(snapshot);
        },
        async close() {},
      };
    },
    { reads: 0, settings: [] as ConnectionSettings[] },
  );
  return factory;
}

export const bindRefused = () => new DirectoryReadError('bind', 'The directory refused the bind DN or password (LDAP result 49)');

/** Stands in for `resolveConnectionSettings` (src/sync/presets.ts) until it exists: no attribute maps beyond defaults. */
export const testResolveSettings: ResolveSettings = (config, bindPassword) => ({
  kind: config.kind,
  url: config.url,
  bindDn: config.bindDn,
  bindPassword,
  tls: { ca: config.tls?.ca, startTls: config.tls?.startTls ?? false },
  timeLimitSeconds: config.timeLimitSeconds ?? 120,
  pageSize: config.pageSize ?? 500,
  users: {
    baseDn: config.users.baseDn,
    filter: config.users.filter ?? '(objectClass=person)',
    externalIdAttribute: 'entryUUID',
    externalIdFormat: 'string',
    emailAttribute: config.users.emailAttribute ?? 'mail',
    nameAttribute: config.users.nameAttribute ?? 'cn',
    uidAttribute: config.users.uidAttribute ?? 'uid',
    disabledFilter: config.users.disabledFilter,
  },
  groups: undefined,
});

/**
 * Stands in for `reconcile` (src/sync/reconcile.ts) until it exists: plans one invite per user read
 * and writes nothing. `hold` keeps runs running until it resolves; `calls` records each call.
 */
export function fakeReconcile(
  options: { hold?: Promise<unknown>; status?: ReconcileResult['status'] } = {},
): ReconcileDirectory & { calls: Parameters<ReconcileDirectory>[0][] } {
  const calls: Parameters<ReconcileDirectory>[0][] = [];
  const reconcile = async (input: Parameters<ReconcileDirectory>[0]): Promise<ReconcileResult> => {
    calls.push(input);
    input.hooks.onProgress?.({ users: 0, of: input.snapshot.users.length });
    if (options.hold) await options.hold;
    const planned = input.snapshot.users.map((u) => ({ action: 'invite', externalId: u.externalId, email: u.email }));
    return {
      status: options.status ?? 'succeeded',
      counts: { read: input.snapshot.users.length, invited: input.options.dryRun ? 0 : planned.length },
      problems: [],
      ...(input.options.dryRun ? { changes: planned } : {}),
    };
  };
  return Object.assign(reconcile, { calls });
}

/** A promise with its resolver, to hold a run in `running`. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
