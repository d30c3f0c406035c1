/**
 * An organization's SSO configuration: the body of `PUT /api/v1/organizations/:oid/sso` (design.md,
 * "SSO", field names included) and its resolution into what the engine stores. Resolving reads
 * SAML metadata (given inline or fetched from its URL) into the IdP's entity id, SSO URL and
 * certificates, and applies the rule that IdP URLs are https unless SSO_ALLOW_HTTP is on.
 */
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { InvalidInput, unstorablePaths, type SsoConfigInput } from '../membership/index.js';
import { SsoError } from './errors.js';
import { parseIdpMetadata } from './saml.js';

const MAX_METADATA_BYTES = 1024 * 1024;
const METADATA_TIMEOUT_MS = 5_000;

const webUrl = z
  .string()
  .max(2048)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL without credentials');
const claimName = z.string().regex(/^[\w.:/-]{1,128}$/, 'must be a claim name');
// RFC 6749 §3.3: scope tokens are printable ASCII without space, `"` or `\`.
const scope = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/, 'must be a scope token');
const pem = z.string().min(64).max(16_384);

export const ssoConfigBody = z
  .strictObject({
    enabled: z.boolean(),
    kind: z.enum(['oidc', 'saml']),
    /** Provision unknown people just in time (role user), seats permitting. */
    jit: z.boolean().default(false),
    /** Where a sign-in may return with its one-time code; matched exactly. */
    returnUrls: z.array(webUrl).max(20).default([]),
    oidc: z
      .strictObject({
        authority: webUrl,
        clientId: z.string().min(1).max(255),
        /** Write-only: sealed at rest, never returned; omit it to keep the stored one. */
        clientSecret: z.string().min(1).max(1024).optional(),
        clientAuthMethod: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
        scopes: z
          .array(scope)
          .min(1)
          .max(20)
          .default(['openid', 'email', 'profile'])
          .refine((scopes) => scopes.includes('openid'), 'must include openid'),
        claims: z
          .strictObject({
            subject: claimName.default('sub'),
            email: claimName.default('email'),
            name: claimName.default('name'),
          })
          .default({ subject: 'sub', email: 'email', name: 'name' }),
      })
      .optional(),
    saml: z
      .strictObject({
        idpMetadataXml: z.string().min(1).max(MAX_METADATA_BYTES).optional(),
        idpMetadataUrl: webUrl.optional(),
        idpEntityId: z.string().min(1).max(1024).optional(),
        idpSsoUrl: webUrl.optional(),
        /** PEM (or base64 DER) signing certificates: one, or two during a rotation. */
        idpCertificates: z.array(pem).min(1).max(2).optional(),
        binding: z.enum(['redirect', 'post']).default('redirect'),
        allowUnsolicited: z.boolean().default(false),
        wantAssertionsSigned: z.boolean().default(true),
        minSignatureAlgorithm: z.enum(['sha1', 'sha256', 'sha512']).default('sha256'),
        nameIdFormat: z.string().min(1).max(256).optional(),
      })
      .superRefine((saml, ctx) => {
        const explicit = saml.idpEntityId !== undefined || saml.idpSsoUrl !== undefined || saml.idpCertificates !== undefined;
        const sources = [saml.idpMetadataXml !== undefined, saml.idpMetadataUrl !== undefined, explicit].filter(Boolean).length;
        if (sources !== 1) {
          ctx.addIssue({
            code: 'custom',
            path: [],
            message: 'give exactly one of idpMetadataXml, idpMetadataUrl, or idpEntityId + idpSsoUrl + idpCertificates',
          });
        } else if (explicit) {
          for (const field of ['idpEntityId', 'idpSsoUrl', 'idpCertificates'] as const) {
            if (saml[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'Required with the explicit IdP fields' });
          }
        }
      })
      .optional(),
  })
  .superRefine((body, ctx) => {
    if (body.kind === 'oidc' && !body.oidc) ctx.addIssue({ code: 'custom', path: ['oidc'], message: 'Required when kind is oidc' });
    if (body.kind === 'saml' && !body.saml) ctx.addIssue({ code: 'custom', path: ['saml'], message: 'Required when kind is saml' });
  });

export type SsoConfigBody = z.infer<typeof ssoConfigBody>;

export interface ResolveOptions {
  allowHttp: boolean;
  /** Fetches IdP metadata; injected so tests can count or refuse fetches. */
  fetch?: typeof fetch;
}

/**
 * The body as the engine stores it, or InvalidInput naming each bad field: plain http where https
 * is required, metadata that cannot be read or parsed, an IdP without a signing certificate.
 */
export async function resolveSsoConfig(body: SsoConfigBody, options: ResolveOptions): Promise<SsoConfigInput> {
  const problems: { path: string; message: string }[] = unstorablePaths(body, 'body').map((path) => ({
    path,
    message: 'must not contain NUL or an unpaired surrogate',
  }));
  const requireHttps = (value: string | undefined, path: string) => {
    if (value !== undefined && !options.allowHttp && new URL(value).protocol !== 'https:') {
      problems.push({ path, message: 'must be https (plain http only with SSO_ALLOW_HTTP=on, for local tests)' });
    }
  };
  requireHttps(body.oidc?.authority, 'body.oidc.authority');
  requireHttps(body.saml?.idpMetadataUrl, 'body.saml.idpMetadataUrl');
  requireHttps(body.saml?.idpSsoUrl, 'body.saml.idpSsoUrl');
  body.returnUrls.forEach((url, i) => {
    // The code rides on this URL: in the clear only to this machine.
    const { protocol, hostname } = new URL(url);
    if (protocol !== 'https:' && !options.allowHttp && !['localhost', '127.0.0.1', '[::1]'].includes(hostname)) {
      problems.push({ path: `body.returnUrls.${i}`, message: 'must be https (or http on localhost)' });
    }
  });
  if (problems.length > 0) throw new InvalidInput('The SSO configuration is invalid', { details: problems });

  const base = { enabled: body.enabled, kind: body.kind, jit: body.jit, returnUrls: body.returnUrls };
  if (body.kind === 'oidc') return { ...base, oidc: body.oidc! };

  const saml = body.saml!;
  let idp = { entityId: saml.idpEntityId, ssoUrl: saml.idpSsoUrl, certificates: saml.idpCertificates };
  if (saml.idpMetadataXml !== undefined || saml.idpMetadataUrl !== undefined) {
    const [path, xml] =
      saml.idpMetadataXml !== undefined
        ? ['body.saml.idpMetadataXml', saml.idpMetadataXml]
        : ['body.saml.idpMetadataUrl', await fetchMetadata(saml.idpMetadataUrl!, options)];
    const metadata = parseOrRefuse(xml, path);
    const ssoUrl = saml.binding === 'post' ? metadata.ssoUrls.post : (metadata.ssoUrls.redirect ?? metadata.ssoUrls.post);
    if (!ssoUrl) {
      throw new InvalidInput('The IdP metadata has no SSO URL for this binding', {
        details: [{ path, message: `no SingleSignOnService with the ${saml.binding} binding` }],
      });
    }
    requireHttps(ssoUrl, path);
    if (problems.length > 0) throw new InvalidInput('The SSO configuration is invalid', { details: problems });
    idp = { entityId: metadata.entityId, ssoUrl, certificates: metadata.certificates.slice(0, 2) };
  } else {
    // Certificates given one by one are checked the way metadata certificates are.
    saml.idpCertificates!.forEach((certificate, i) => {
      if (!looksLikeCertificate(certificate)) {
        problems.push({ path: `body.saml.idpCertificates.${i}`, message: 'must be a PEM (or base64 DER) X.509 certificate' });
      }
    });
    if (problems.length > 0) throw new InvalidInput('The SSO configuration is invalid', { details: problems });
  }
  return {
    ...base,
    saml: {
      idpEntityId: idp.entityId!,
      idpSsoUrl: idp.ssoUrl!,
      idpCertificates: idp.certificates!,
      idpMetadataUrl: saml.idpMetadataUrl,
      binding: saml.binding,
      allowUnsolicited: saml.allowUnsolicited,
      wantAssertionsSigned: saml.wantAssertionsSigned,
      minSignatureAlgorithm: saml.minSignatureAlgorithm,
      nameIdFormat: saml.nameIdFormat,
    },
  };
}

function parseOrRefuse(xml: string, path: string) {
  try {
    return parseIdpMetadata(xml);
  } catch (error) {
    const message = error instanceof SsoError ? error.message : 'the IdP metadata cannot be read';
    throw new InvalidInput('The IdP metadata is invalid', { details: [{ path, message }] });
  }
}

async function fetchMetadata(url: string, options: ResolveOptions): Promise<string> {
  const refuse = (message: string) =>
    new InvalidInput('The IdP metadata cannot be fetched', { details: [{ path: 'body.saml.idpMetadataUrl', message }] });
  let response: Response;
  try {
    // No redirects: the URL an admin typed is the one we read, never one a server points us to.
    response = await (options.fetch ?? fetch)(url, { redirect: 'error', signal: AbortSignal.timeout(METADATA_TIMEOUT_MS) });
  } catch {
    throw refuse('the URL cannot be reached (or redirects)');
  }
  if (!response.ok) throw refuse(`the server answered ${response.status}`);
  const length = Number(response.headers.get('content-length') ?? 0);
  if (length > MAX_METADATA_BYTES) throw refuse('the metadata is larger than 1 MB');
  const text = await response.text();
  if (text.length > MAX_METADATA_BYTES) throw refuse('the metadata is larger than 1 MB');
  return text;
}

function looksLikeCertificate(value: string): boolean {
  const body = value
    .replace(/-----BEGIN CERTIFICATE-----|-----END CERTIFICATE-----/g, '')
    .replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return false;
  try {
    return new X509Certificate(Buffer.from(body, 'base64')).publicKey !== undefined;
  } catch {
    return false;
  }
}
