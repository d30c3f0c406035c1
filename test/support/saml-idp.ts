/**
 * A SAML 2.0 identity provider for tests: samlify's IdentityProvider (metadata, AuthnRequest
 * parsing) with an RSA key and self-signed certificate generated at test time, and responses built
 * from a template with every knob an attack test needs, signed by xml-crypto (what samlify signs
 * with). `build` gives the unsigned XML and `signAssertion`/`signResponse` sign any XML, so tests can
 * craft wrapping variants by hand between the two.
 */
import { generateKeyPairSync, randomBytes, randomUUID, sign as rsaSign } from 'node:crypto';
import * as samlify from 'samlify';
import { SignedXml } from 'xml-crypto';
import { samlSchemaValidator } from '../../src/sso/xsd.js';

// samlify parses nothing without a schema validator; the IdP side uses the SP's.
samlify.setSchemaValidator(samlSchemaValidator);

export type Algorithm = 'sha1' | 'sha256' | 'sha512';
const SIGNATURE_URI: Record<Algorithm, string> = {
  sha1: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
  sha256: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  sha512: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
};
const DIGEST_URI: Record<Algorithm, string> = {
  sha1: 'http://www.w3.org/2000/09/xmldsig#sha1',
  sha256: 'http://www.w3.org/2001/04/xmlenc#sha256',
  sha512: 'http://www.w3.org/2001/04/xmlenc#sha512',
};
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';

export interface KeyPair {
  privateKeyPem: string;
  certificatePem: string;
  /** Base64 DER, as metadata carries it. */
  certificateBase64: string;
}

// Just enough DER (X.690) for a self-signed X.509 v3 certificate (RFC 5280 §4.1).
function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}
const sequence = (...items: Buffer[]) => der(0x30, Buffer.concat(items));
const oid = (dotted: string) => {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const value of rest) {
    const chunk = [value & 0x7f];
    for (let v = value >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
};
const utcTime = (d: Date) => der(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'));
const commonName = (cn: string) => sequence(der(0x31, sequence(oid('2.5.4.3'), der(0x0c, Buffer.from(cn)))));

/** A fresh RSA-2048 key and a self-signed SHA-256 certificate valid from yesterday for a year. */
export function generateKeyPair(cn = 'Portico Test IdP'): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const sha256WithRsa = sequence(oid('1.2.840.113549.1.1.11'), Buffer.from([0x05, 0x00]));
  const serial = randomBytes(8);
  // Positive and minimal in DER: a leading 0x00 byte (1 in 128 draws) makes OpenSSL refuse the INTEGER.
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    sha256WithRsa,
    commonName(cn),
    sequence(utcTime(new Date(Date.now() - 86_400_000)), utcTime(new Date(Date.now() + 365 * 86_400_000))),
    commonName(cn),
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = rsaSign('sha256', tbs, privateKey);
  const certificate = sequence(tbs, sha256WithRsa, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const certificateBase64 = certificate.toString('base64');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certificatePem: `-----BEGIN CERTIFICATE-----\n${certificateBase64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`,
    certificateBase64,
  };
}

export interface ResponseOptions {
  /** `null` leaves InResponseTo out of both the Response and SubjectConfirmationData. */
  inResponseTo?: string | null;
  audience?: string;
  recipient?: string;
  /** `null` leaves Destination out. */
  destination?: string | null;
  issuer?: string;
  /** `null` leaves the Response's Issuer out. */
  responseIssuer?: string | null;
  nameId?: string;
  nameIdFormat?: string;
  attributes?: Record<string, string[]>;
  now?: Date;
  notBefore?: Date;
  notOnOrAfter?: Date;
  subjectNotOnOrAfter?: Date;
  statusCode?: string;
  responseId?: string;
  assertionId?: string;
  sessionIndex?: string;
  /** Raw XML of further assertions, placed after the IdP's own (before any signing). */
  extraAssertions?: string[];
}

export interface SignOptions {
  algorithm?: Algorithm;
  /** Digest algorithm when it differs from the signature's. */
  digest?: Algorithm;
  key?: KeyPair;
  /** Leave the certificate out of KeyInfo. */
  omitKeyInfo?: boolean;
}

export type SignMode = 'assertion' | 'response' | 'both' | 'none';

export interface TestIdp {
  entityId: string;
  ssoUrl: string;
  keys: KeyPair;
  /** samlify's IdentityProvider for this IdP. */
  entity: ReturnType<typeof samlify.IdentityProvider>;
  metadata(): string;
  /** The AuthnRequest an SP redirected to us (parsed by samlify): its ID and the SP's entity id. */
  readAuthnRequest(spMetadata: string, redirectUrl: string): Promise<{ id: string; issuer: string }>;
  /** Unsigned Response XML. */
  build(options?: ResponseOptions): string;
  signAssertion(xml: string, options?: SignOptions): string;
  signResponse(xml: string, options?: SignOptions): string;
  /** `build`, signed as asked, base64 as the browser posts it. */
  response(options?: ResponseOptions & { sign?: SignMode; signing?: SignOptions }): string;
}

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export const encode = (xml: string) => Buffer.from(xml, 'utf8').toString('base64');
export const decode = (base64: string) => Buffer.from(base64, 'base64').toString('utf8');

export interface TestIdpOptions {
  entityId?: string;
  ssoUrl?: string;
  keys?: KeyPair;
  /** Where the SP expects responses (default Recipient/Destination). */
  acsUrl: string;
  spEntityId: string;
}

export async function createTestIdp(options: TestIdpOptions): Promise<TestIdp> {
  const entityId = options.entityId ?? 'https://idp.test.local/saml';
  const ssoUrl = options.ssoUrl ?? 'https://idp.test.local/sso';
  const keys = options.keys ?? generateKeyPair();
  const entity = samlify.IdentityProvider({
    entityID: entityId,
    privateKey: keys.privateKeyPem,
    signingCert: keys.certificateBase64,
    singleSignOnService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: ssoUrl },
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: ssoUrl },
    ],
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
  });

  function build(o: ResponseOptions = {}): string {
    const now = o.now ?? new Date();
    const iso = (d: Date) => d.toISOString();
    const later = new Date(now.getTime() + 5 * 60_000);
    const irt = o.inResponseTo === undefined ? '_request' : o.inResponseTo;
    const irtAttr = irt === null ? '' : ` InResponseTo="${escapeXml(irt)}"`;
    const destination = o.destination === undefined ? options.acsUrl : o.destination;
    const responseIssuer = o.responseIssuer === undefined ? (o.issuer ?? entityId) : o.responseIssuer;
    const attributes = Object.entries(o.attributes ?? { email: ['ada@example.com'], displayName: ['Ada Lovelace'] })
      .map(
        ([name, values]) =>
          `<saml:Attribute Name="${escapeXml(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified">${values
            .map((v) => `<saml:AttributeValue xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string" xmlns:xs="http://www.w3.org/2001/XMLSchema">${escapeXml(v)}</saml:AttributeValue>`)
            .join('')}</saml:Attribute>`,
      )
      .join('');
    return (
      `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"` +
      ` ID="${o.responseId ?? `_r${randomUUID()}`}" Version="2.0" IssueInstant="${iso(now)}"` +
      `${destination === null ? '' : ` Destination="${escapeXml(destination)}"`}${irtAttr}>` +
      `${responseIssuer === null ? '' : `<saml:Issuer>${escapeXml(responseIssuer)}</saml:Issuer>`}` +
      `<samlp:Status><samlp:StatusCode Value="${o.statusCode ?? 'urn:oasis:names:tc:SAML:2.0:status:Success'}"/></samlp:Status>` +
      `<saml:Assertion ID="${o.assertionId ?? `_a${randomUUID()}`}" Version="2.0" IssueInstant="${iso(now)}">` +
      `<saml:Issuer>${escapeXml(o.issuer ?? entityId)}</saml:Issuer>` +
      `<saml:Subject><saml:NameID Format="${o.nameIdFormat ?? 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'}">${escapeXml(o.nameId ?? 'ada@example.com')}</saml:NameID>` +
      `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData` +
      ` NotOnOrAfter="${iso(o.subjectNotOnOrAfter ?? later)}" Recipient="${escapeXml(o.recipient ?? options.acsUrl)}"${irtAttr}/>` +
      `</saml:SubjectConfirmation></saml:Subject>` +
      `<saml:Conditions NotBefore="${iso(o.notBefore ?? new Date(now.getTime() - 1000))}" NotOnOrAfter="${iso(o.notOnOrAfter ?? later)}">` +
      `<saml:AudienceRestriction><saml:Audience>${escapeXml(o.audience ?? options.spEntityId)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
      `<saml:AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="${o.sessionIndex ?? `_s${randomUUID()}`}">` +
      `<saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
      `${attributes ? `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` : ''}` +
      `</saml:Assertion>${(o.extraAssertions ?? []).join('')}</samlp:Response>`
    );
  }

  function sign(xml: string, target: 'assertion' | 'response', o: SignOptions = {}): string {
    const pair = o.key ?? keys;
    const algorithm = o.algorithm ?? 'sha256';
    const signer = new SignedXml({
      privateKey: pair.privateKeyPem,
      publicCert: o.omitKeyInfo ? undefined : pair.certificatePem,
      signatureAlgorithm: SIGNATURE_URI[algorithm],
      canonicalizationAlgorithm: EXC_C14N,
    });
    const path =
      target === 'assertion'
        ? "/*[local-name(.)='Response']/*[local-name(.)='Assertion']"
        : "/*[local-name(.)='Response']";
    signer.addReference({ xpath: path, digestAlgorithm: DIGEST_URI[o.digest ?? algorithm], transforms: [ENVELOPED, EXC_C14N] });
    // Schema order puts ds:Signature right after the Issuer of the signed element.
    signer.computeSignature(xml, { prefix: 'ds', location: { reference: `${path}/*[local-name(.)='Issuer']`, action: 'after' } });
    return signer.getSignedXml();
  }

  return {
    entityId,
    ssoUrl,
    keys,
    entity,
    metadata: () => entity.getMetadata(),
    async readAuthnRequest(spMetadata, redirectUrl) {
      const sp = samlify.ServiceProvider({ metadata: spMetadata });
      const url = new URL(redirectUrl);
      const query = Object.fromEntries(url.searchParams);
      const parsed = await entity.parseLoginRequest(sp, 'redirect', { query, octetString: '' });
      const extract = parsed.extract as { request: { id: string }; issuer: string };
      return { id: extract.request.id, issuer: extract.issuer };
    },
    build,
    signAssertion: (xml, o) => sign(xml, 'assertion', o),
    signResponse: (xml, o) => sign(xml, 'response', o),
    response(o = {}) {
      const mode = o.sign ?? 'both';
      let xml = build(o);
      if (mode === 'assertion' || mode === 'both') xml = sign(xml, 'assertion', o.signing);
      if (mode === 'response' || mode === 'both') xml = sign(xml, 'response', o.signing);
      return encode(xml);
    },
  };
}
