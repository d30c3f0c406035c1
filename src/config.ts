/**
 * Configuration: one zod object read from the environment, the only reader of `process.env`.
 * Env names are the runtime contract in docs/design.md; a bad value stops the start with a
 * message naming the variable.
 */
import { z } from 'zod';

const onOff = z.enum(['on', 'off']);

export const configSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080).describe('HTTP port'),
  PUBLIC_URL: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe('External base URL used in links, SCIM meta.location and SSO metadata; default http://localhost:$PORT'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional()
    .describe('PostgreSQL URL; when unset, embedded PGlite in DATA_DIR'),
  DATA_DIR: z.string().min(1).default('./data').describe('Where PGlite keeps its files'),
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional()
    .describe('e.g. smtp://127.0.0.1:2525; when unset mail stays in the outbox table, for the operator to read at GET /api/v1/outbox'),
  SMTP_FROM: z.string().min(3).default('Portico <no-reply@localhost>').describe('Sender address of mails'),
  SYSTEM_ADMIN_TOKEN: z
    .string()
    .min(32, 'must be at least 32 characters; make one with `openssl rand -base64 32`')
    .optional()
    .describe('Operator token; when unset on first start one is generated and printed once'),
  SCHEDULER: onOff.default('on').describe('on/off: run directory sync schedules in this process'),
  ENCRYPTION_KEY: z
    .string()
    .min(32, 'must be at least 32 characters; make one with `openssl rand -base64 32`')
    .optional()
    .describe('Key for secrets that must be read back (unsent mail included); required with DATABASE_URL, generated into DATA_DIR with PGlite'),
  DNS_SERVERS: z.string().optional().describe('Resolvers for domain verification, e.g. 127.0.0.1:5353; default: system'),
  SSO_ALLOW_HTTP: onOff
    .default('off')
    .describe('on lets OIDC/SAML IdP URLs use plain http: (local testing only; never in production)'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level'),
  BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/).default('100kb').describe('Largest accepted request body'),
  RATE_LIMIT_AUTH_FAILURES: z.coerce
    .number()
    .int()
    .min(0)
    .default(10)
    .describe(
      'Failed authentications one client IP may make per kind (API bearer token, SCIM key, invitation token, setup token, failed SSO response) within RATE_LIMIT_AUTH_WINDOW; then every attempt answers 429 until the window passes; 0 turns it off',
    ),
  RATE_LIMIT_SCIM_FAILURES: z.coerce
    .number()
    .int()
    .min(0)
    .default(50)
    .describe('Failed SCIM-key authentications on one organization, from any client, within RATE_LIMIT_AUTH_WINDOW; 0 turns it off'),
  RATE_LIMIT_AUTH_WINDOW: z.coerce
    .number()
    .int()
    .min(1)
    .max(86_400)
    .default(900)
    .describe('Seconds a failed-authentication window lasts, from its first failure'),
  RATE_LIMIT_MAILS: z.coerce
    .number()
    .int()
    .min(0)
    .default(10)
    .describe('Mails to one address per hour, all kinds together; past it the change that would mail answers 429; 0 turns it off'),
});

/** Cross-variable rules, reported with the others. */
const configRules = configSchema.superRefine((raw, ctx) => {
  if (raw.DATABASE_URL && !raw.ENCRYPTION_KEY) {
    ctx.addIssue({
      code: 'custom',
      path: ['ENCRYPTION_KEY'],
      message: 'required with DATABASE_URL so every instance shares it; make one with `openssl rand -base64 32`',
    });
  }
});

export type RawConfig = z.infer<typeof configSchema>;

export interface Config {
  port: number;
  publicUrl: string;
  databaseUrl: string | undefined;
  dataDir: string;
  smtpUrl: string | undefined;
  smtpFrom: string;
  systemAdminToken: string | undefined;
  scheduler: boolean;
  encryptionKey: string | undefined;
  dnsServers: string[];
  ssoAllowHttp: boolean;
  logLevel: RawConfig['LOG_LEVEL'];
  bodyLimit: string;
  rateLimits: {
    authFailuresPerClient: number;
    scimFailuresPerOrganization: number;
    authWindowSeconds: number;
    mailsPerRecipient: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses `env` (a copy of process.env in main, a literal in tests). Throws ConfigError listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset", as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = configRules.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const raw = parsed.data;
  return {
    port: raw.PORT,
    publicUrl: (raw.PUBLIC_URL ?? `http://localhost:${raw.PORT}`).replace(/\/+$/, ''),
    databaseUrl: raw.DATABASE_URL,
    dataDir: raw.DATA_DIR,
    smtpUrl: raw.SMTP_URL,
    smtpFrom: raw.SMTP_FROM,
    systemAdminToken: raw.SYSTEM_ADMIN_TOKEN,
    scheduler: raw.SCHEDULER === 'on',
    encryptionKey: raw.ENCRYPTION_KEY,
    dnsServers: raw.DNS_SERVERS ? raw.DNS_SERVERS.split(',').map((s) => s.trim()).filter(Boolean) : [],
    ssoAllowHttp: raw.SSO_ALLOW_HTTP === 'on',
    logLevel: raw.LOG_LEVEL,
    bodyLimit: raw.BODY_LIMIT,
    rateLimits: {
      authFailuresPerClient: raw.RATE_LIMIT_AUTH_FAILURES,
      scimFailuresPerOrganization: raw.RATE_LIMIT_SCIM_FAILURES,
      authWindowSeconds: raw.RATE_LIMIT_AUTH_WINDOW,
      mailsPerRecipient: raw.RATE_LIMIT_MAILS,
    },
  };
}

/** A copy of the process environment for `loadConfig`: the operator CLI's way in, as this module alone reads process.env. */
export const processEnvironment = (): Record<string, string | undefined> => ({ ...process.env });

/** Config for tests: defaults plus `overrides` (env names). */
export const testConfig = (overrides: Record<string, string> = {}): Config =>
  loadConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent', SCHEDULER: 'off', ...overrides });
