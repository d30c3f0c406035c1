/**
 * An organization's single sign-on configuration (design.md, "SSO"). The adapter validates the
 * body's shape and resolves SAML metadata into the IdP's entity id, SSO URL and certificates; the
 * engine owns who may change it (manageSso on an Enterprise plan), the client-secret rule, the
 * revision and the events. The OIDC client secret is sealed with ENCRYPTION_KEY under the context
 * `sso:<organization id>` and never rendered.
 */
import { eq } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Tx } from './context.js';
import { define, InvalidInput } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import { requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { loadOrganization } from './organizations.js';
import { lockOrganization } from './organization-state.js';
import { openSecret, sealSecret } from './secret-box.js';

export class SsoNotConfigured extends define('sso.not_found', 'The organization has no SSO configuration') {}

export type SsoKind = 'oidc' | 'saml';

export interface OidcConfig {
  authority: string;
  clientId: string;
  clientAuthMethod: 'client_secret_basic' | 'client_secret_post';
  scopes: string[];
  claims: { subject: string; email: string; name: string };
}

export interface SamlConfig {
  idpEntityId: string;
  idpSsoUrl: string;
  /** PEM certificates (one, or two during a rotation: either verifies). */
  idpCertificates: string[];
  /** Where the metadata was read from, when it was given as a URL. */
  idpMetadataUrl?: string | undefined;
  binding: 'redirect' | 'post';
  allowUnsolicited: boolean;
  wantAssertionsSigned: boolean;
  minSignatureAlgorithm: 'sha1' | 'sha256' | 'sha512';
  nameIdFormat?: string | undefined;
}

/** The PUT body as the adapter validated and resolved it. */
export interface SsoConfigInput {
  enabled: boolean;
  kind: SsoKind;
  jit: boolean;
  returnUrls: string[];
  oidc?: (OidcConfig & { clientSecret?: string | undefined }) | undefined;
  saml?: SamlConfig | undefined;
}

/** What the service provider side looks like, derived from PUBLIC_URL and the organization's identifier. */
export interface ServiceProviderInfo {
  loginUrl: string;
  oidcRedirectUri: string;
  samlEntityId: string;
  samlAcsUrl: string;
  samlMetadataUrl: string;
}

/** What GET answers: the configuration, never the client secret. */
export interface SsoConfig {
  enabled: boolean;
  kind: SsoKind;
  jit: boolean;
  returnUrls: string[];
  oidc?: OidcConfig & { clientSecretSet: boolean };
  saml?: SamlConfig;
  serviceProvider: ServiceProviderInfo;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** The configuration with its secret, for the sign-in adapter only. */
export interface SsoSettings {
  organizationId: OrganizationId;
  identifier: string;
  enabled: boolean;
  kind: SsoKind;
  jit: boolean;
  returnUrls: string[];
  revision: number;
  oidc?: OidcConfig & { clientSecret: string };
  saml?: SamlConfig;
  serviceProvider: ServiceProviderInfo;
}

type ConfigRow = typeof schema.ssoConfigs.$inferSelect;
interface StoredDocument {
  jit: boolean;
  returnUrls: string[];
  oidc?: OidcConfig;
  saml?: SamlConfig;
}

const sealContext = (organizationId: string) => ({ context: `sso:${organizationId}` });

export function serviceProviderInfo(publicUrl: string, identifier: string): ServiceProviderInfo {
  const base = publicUrl.replace(/\/+$/, '');
  const id = encodeURIComponent(identifier);
  return {
    loginUrl: `${base}/sso/${id}/login`,
    oidcRedirectUri: `${base}/sso/oidc/${id}/callback`,
    samlEntityId: `${base}/sso/saml/${id}/metadata`,
    samlAcsUrl: `${base}/sso/saml/${id}/acs`,
    samlMetadataUrl: `${base}/sso/saml/${id}/metadata`,
  };
}

/**
 * Creates or replaces the configuration. A PUT without `oidc.clientSecret` keeps the stored one;
 * OIDC without any secret is refused. Turning SSO on or off is its own event.
 */
export async function putSsoConfig(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  input: SsoConfigInput,
): Promise<SsoConfig> {
  requirePermission(caller, 'manageSso');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'sso');
  const existing = await loadConfigRow(tx.db, organizationId);
  const problems: { path: string; message: string }[] = [];
  if (input.kind === 'oidc' && !input.oidc) problems.push({ path: 'body.oidc', message: 'Required when kind is oidc' });
  if (input.kind === 'saml' && !input.saml) problems.push({ path: 'body.saml', message: 'Required when kind is saml' });
  let sealed: string | null = null;
  if (input.kind === 'oidc' && input.oidc) {
    if (input.oidc.clientSecret) sealed = sealSecret(tx.deps.encryptionKey, input.oidc.clientSecret, sealContext(organizationId));
    else if (existing?.clientSecretSealed) sealed = existing.clientSecretSealed;
    else problems.push({ path: 'body.oidc.clientSecret', message: 'Required on the first OIDC configuration' });
  }
  if (problems.length > 0) throw new InvalidInput('The SSO configuration is invalid', { details: problems });

  const document: StoredDocument = { jit: input.jit, returnUrls: input.returnUrls };
  if (input.kind === 'oidc') {
    const { clientSecret: _secret, ...oidc } = input.oidc!;
    document.oidc = oidc;
  } else {
    document.saml = input.saml!;
  }
  const values = {
    enabled: input.enabled,
    kind: input.kind,
    config: document as unknown as Record<string, unknown>,
    clientSecretSealed: sealed,
    revision: (existing?.revision ?? 0) + 1,
    updatedAt: tx.now,
  };
  const c = schema.ssoConfigs;
  const [row] = await tx.db
    .insert(c)
    .values({ organizationId, createdAt: tx.now, ...values })
    .onConflictDoUpdate({ target: c.organizationId, set: values })
    .returning();
  const wasEnabled = existing?.enabled ?? false;
  const type = input.enabled === wasEnabled ? 'organization.updated' : input.enabled ? 'organization.ssoEnabled' : 'organization.ssoDisabled';
  await recordEvent(tx, { type, actor: caller.actor, organizationId });
  return renderConfig(row!, serviceProviderInfo(tx.deps.publicUrl, org.identifier));
}

export async function getSsoConfig(
  db: Db,
  publicUrl: string,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
): Promise<SsoConfig> {
  requirePermission(caller, 'manageSso');
  const org = await loadOrganization(db, organizationId);
  requireFeature(org.plan, 'sso');
  const row = await loadConfigRow(db, organizationId);
  if (!row) throw new SsoNotConfigured();
  return renderConfig(row, serviceProviderInfo(publicUrl, org.identifier));
}

/** Deletes the configuration; SSO stops at once (an enabled one records ssoDisabled). Identities stay linked. */
export async function deleteSsoConfig(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller): Promise<void> {
  requirePermission(caller, 'manageSso');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'sso');
  const [deleted] = await tx.db
    .delete(schema.ssoConfigs)
    .where(eq(schema.ssoConfigs.organizationId, organizationId))
    .returning({ enabled: schema.ssoConfigs.enabled });
  if (!deleted) throw new SsoNotConfigured();
  await recordEvent(tx, {
    type: deleted.enabled ? 'organization.ssoDisabled' : 'organization.updated',
    actor: caller.actor,
    organizationId,
  });
}

/**
 * The settings a sign-in needs, by the organization's identifier, or undefined when the
 * organization does not exist, is disabled, lacks the plan, or has no enabled configuration: a
 * visitor learns no more than "no SSO here".
 */
export async function loadSsoSettings(db: Db, publicUrl: string, encryptionKey: string, identifier: string): Promise<SsoSettings | undefined> {
  const o = schema.organizations;
  const c = schema.ssoConfigs;
  const [row] = await db
    .select({ org: o, config: c })
    .from(o)
    .innerJoin(c, eq(c.organizationId, o.id))
    .where(eq(o.identifier, identifier.toLowerCase()));
  if (!row || !row.org.enabled || !row.config.enabled) return undefined;
  try {
    requireFeature(row.org.plan, 'sso');
  } catch {
    return undefined;
  }
  return settingsOf(row.config, row.org.identifier, publicUrl, encryptionKey);
}

/** The same, by organization id (a transaction found by its key names the organization). */
export async function loadSsoSettingsById(
  db: Db,
  publicUrl: string,
  encryptionKey: string,
  organizationId: string,
): Promise<SsoSettings | undefined> {
  if (!isId(organizationId)) return undefined;
  const [row] = await db
    .select({ identifier: schema.organizations.identifier })
    .from(schema.organizations)
    .where(eq(schema.organizations.id, organizationId));
  return row ? loadSsoSettings(db, publicUrl, encryptionKey, row.identifier) : undefined;
}

function settingsOf(row: ConfigRow, identifier: string, publicUrl: string, encryptionKey: string): SsoSettings {
  const document = row.config as unknown as StoredDocument;
  const settings: SsoSettings = {
    organizationId: row.organizationId as OrganizationId,
    identifier,
    enabled: row.enabled,
    kind: row.kind as SsoKind,
    jit: document.jit,
    returnUrls: document.returnUrls,
    revision: row.revision,
    serviceProvider: serviceProviderInfo(publicUrl, identifier),
  };
  if (row.kind === 'oidc' && document.oidc && row.clientSecretSealed) {
    settings.oidc = { ...document.oidc, clientSecret: openSecret(encryptionKey, row.clientSecretSealed, sealContext(row.organizationId)) };
  }
  if (row.kind === 'saml' && document.saml) settings.saml = document.saml;
  return settings;
}

async function loadConfigRow(db: Db, organizationId: string): Promise<ConfigRow | undefined> {
  const [row] = await db.select().from(schema.ssoConfigs).where(eq(schema.ssoConfigs.organizationId, organizationId));
  return row;
}

function renderConfig(row: ConfigRow, serviceProvider: ServiceProviderInfo): SsoConfig {
  const document = row.config as unknown as StoredDocument;
  const config: SsoConfig = {
    enabled: row.enabled,
    kind: row.kind as SsoKind,
    jit: document.jit,
    returnUrls: document.returnUrls,
    serviceProvider,
    revision: row.revision,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
  if (document.oidc) config.oidc = { ...document.oidc, clientSecretSet: row.clientSecretSealed !== null };
  if (document.saml) config.saml = document.saml;
  return config;
}
