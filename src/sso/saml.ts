/**
 * SAML 2.0 Web Browser SSO, service-provider side: SP metadata, AuthnRequests, and the checks on an
 * ACS response that samlify 2.13 leaves to us (docs/sso-notes.md). Pure: no database, no HTTP.
 * The caller keeps the request id in a single-use transaction and the assertion id in a replay cache.
 *
 * Order of checks on a response: size and base64 → no DOCTYPE → well-formed → XSD → Status →
 * structure (one Assertion, no EncryptedAssertion, unique IDs, signatures only where SAML puts them)
 * → algorithms → every signature present verified with the trusted certificates → samlify's
 * extractor on the verified assertion → audience, confirmation, time window, InResponseTo,
 * Destination against `settings` and `expect`.
 *
 * samlify's parseLoginResponse is not called: each of its checks is made here, stricter (it accepts a
 * response whose first signature fails if another passes, tries only the first certificate when
 * KeyInfo is absent, and reads the wall clock), and calling it as well doubled the cost of a call
 * (bench/sso.ts). Its schema hook, extractor, metadata and AuthnRequest builder are used.
 */
import { X509Certificate } from 'node:crypto';
import { DOMParser } from '@xmldom/xmldom';
import * as samlify from 'samlify';
import { SignedXml } from 'xml-crypto';
import { SsoError, type SsoErrorCode } from './errors.js';
import { samlSchemaValidator } from './xsd.js';

samlify.setSchemaValidator(samlSchemaValidator);

const NS = {
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  metadata: 'urn:oasis:names:tc:SAML:2.0:metadata',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
} as const;
const BINDING = {
  redirect: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
  post: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
} as const;
const STATUS_SUCCESS = 'urn:oasis:names:tc:SAML:2.0:status:Success';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const NAMEID_EMAIL = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
/** Express caps the body too; this bounds what reaches the parsers whoever the caller is. */
const MAX_RESPONSE_BASE64 = 512 * 1024;

export type SignatureStrength = 'sha1' | 'sha256' | 'sha512';

export interface SamlSettings {
  spEntityId: string;
  acsUrl: string;
  idp: {
    entityId: string;
    ssoUrl: string;
    /** 1–2 PEM or base64 DER certificates; two during a rotation, either verifies. */
    certificates: string[];
  };
  binding: 'redirect' | 'post';
  /** Accept IdP-initiated responses (no InResponseTo). */
  allowUnsolicited: boolean;
  /** Require a valid signature on the Assertion itself, not only on the Response. */
  wantAssertionsSigned: boolean;
  minSignatureAlgorithm: SignatureStrength;
  nameIdFormat?: string;
  clockSkewSeconds: number;
}

export interface SamlIdentity {
  issuer: string;
  nameId: string;
  nameIdFormat: string | null;
  assertionId: string;
  /** Keep `assertionId` in the replay cache until this instant (clock skew included). */
  notOnOrAfter: Date;
  inResponseTo: string | null;
  sessionIndex: string | null;
  attributes: Record<string, string[]>;
  email: string | null;
  name: string | null;
}

export interface SamlLoginRequest {
  requestId: string;
  redirectUrl?: string;
  form?: { action: string; fields: Record<string, string> };
}

export interface SamlServiceProvider {
  metadata(): string;
  createLoginRequest(relayState: string): SamlLoginRequest;
  validateResponse(
    body: { SAMLResponse: string; RelayState?: string },
    expect: { requestId: string | null; now?: Date },
  ): Promise<SamlIdentity>;
}

export interface IdpMetadata {
  entityId: string;
  ssoUrls: { redirect?: string; post?: string };
  certificates: string[];
}

function refuse(code: SsoErrorCode, message: string, cause?: unknown): never {
  throw new SsoError(code, message, cause === undefined ? undefined : { cause });
}

/** xmldom that throws on any error or warning instead of recovering. */
function parseXml(xml: string, code: SsoErrorCode): Document {
  const fail = (message: string) => refuse(code, 'The XML document is not well-formed.', new Error(message));
  try {
    return new DOMParser({ errorHandler: { warning: fail, error: fail, fatalError: fail } }).parseFromString(
      xml,
      'text/xml',
    );
  } catch (error) {
    if (error instanceof SsoError) throw error;
    return refuse(code, 'The XML document is not well-formed.', error);
  }
}

function childElements(parent: Element, ns: string, localName: string): Element[] {
  const found: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === 1 && (node as Element).namespaceURI === ns && (node as Element).localName === localName) {
      found.push(node as Element);
    }
  }
  return found;
}

function allElements(doc: Document): Element[] {
  return Array.from(doc.getElementsByTagName('*')) as unknown as Element[];
}

/** Base64 DER body and PEM of a certificate given either way; throws on anything unparsable. */
function normalizeCertificate(input: string): { base64: string; pem: string } {
  const base64 = input
    .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
    .replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    refuse('sso.invalidConfiguration', 'A SAML certificate is not PEM or base64 DER.');
  }
  try {
    new X509Certificate(Buffer.from(base64, 'base64'));
  } catch (error) {
    refuse('sso.invalidConfiguration', 'A SAML certificate could not be read as X.509.', error);
  }
  const pem = `-----BEGIN CERTIFICATE-----\n${base64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
  return { base64, pem };
}

/**
 * Reads an IdP's SAML metadata (saml-metadata §2.4.3). Refuses DOCTYPEs, malformed XML, and an IdP
 * without a signing certificate: every response must be verifiable (sso-notes).
 */
export function parseIdpMetadata(xml: string): IdpMetadata {
  if (/<!DOCTYPE/i.test(xml)) refuse('sso.invalidConfiguration', 'IdP metadata must not contain a DOCTYPE.');
  const doc = parseXml(xml, 'sso.invalidConfiguration');
  const idpDescriptors = Array.from(doc.getElementsByTagNameNS(NS.metadata, 'IDPSSODescriptor')) as unknown as Element[];
  if (idpDescriptors.length !== 1) {
    refuse('sso.invalidConfiguration', 'IdP metadata must describe exactly one IDPSSODescriptor.');
  }
  const descriptor = idpDescriptors[0]!;
  const entity = descriptor.parentNode as Element | null;
  const entityId = entity?.localName === 'EntityDescriptor' ? entity.getAttribute('entityID') : null;
  if (!entityId) refuse('sso.invalidConfiguration', 'IdP metadata has no entityID.');

  const ssoUrls: IdpMetadata['ssoUrls'] = {};
  for (const service of childElements(descriptor, NS.metadata, 'SingleSignOnService')) {
    const location = service.getAttribute('Location');
    const binding = service.getAttribute('Binding');
    if (!location) continue;
    if (binding === BINDING.redirect) ssoUrls.redirect ??= location;
    if (binding === BINDING.post) ssoUrls.post ??= location;
  }
  if (!ssoUrls.redirect && !ssoUrls.post) {
    refuse('sso.invalidConfiguration', 'IdP metadata has no HTTP-Redirect or HTTP-POST SingleSignOnService.');
  }

  const certificates: string[] = [];
  for (const key of childElements(descriptor, NS.metadata, 'KeyDescriptor')) {
    const use = key.getAttribute('use');
    // A KeyDescriptor without `use` serves both signing and encryption (saml-metadata §2.4.1.1).
    if (use && use !== 'signing') continue;
    for (const cert of Array.from(key.getElementsByTagNameNS(NS.dsig, 'X509Certificate')) as Element[]) {
      const { base64 } = normalizeCertificate(cert.textContent ?? '');
      if (!certificates.includes(base64)) certificates.push(base64);
    }
  }
  if (certificates.length === 0) refuse('sso.invalidConfiguration', 'IdP metadata has no signing certificate.');
  return { entityId: entityId!, ssoUrls, certificates };
}

const ALGORITHM_STRENGTH: Record<string, number> = {
  'http://www.w3.org/2000/09/xmldsig#rsa-sha1': 1,
  'http://www.w3.org/2000/09/xmldsig#sha1': 1,
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256': 2,
  'http://www.w3.org/2001/04/xmlenc#sha256': 2,
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512': 3,
  'http://www.w3.org/2001/04/xmlenc#sha512': 3,
};
const MIN_STRENGTH: Record<SignatureStrength, number> = { sha1: 1, sha256: 2, sha512: 3 };

/** Every SignatureMethod and DigestMethod of `signature` is known and at least `min`. */
function checkAlgorithms(signature: Element, min: SignatureStrength): void {
  const methods = [
    ...Array.from(signature.getElementsByTagNameNS(NS.dsig, 'SignatureMethod')),
    ...Array.from(signature.getElementsByTagNameNS(NS.dsig, 'DigestMethod')),
  ];
  if (methods.length < 2) refuse('saml.signature', 'The signature names no algorithm.');
  for (const method of methods) {
    const strength = ALGORITHM_STRENGTH[method.getAttribute('Algorithm') ?? ''] ?? 0;
    if (strength < MIN_STRENGTH[min]) {
      refuse('saml.weakAlgorithm', `The IdP signed with an algorithm weaker than ${min}, which this organization refuses.`);
    }
  }
}

/**
 * Refuses shapes that signature-wrapping attacks need: exactly one Assertion in the whole document,
 * a direct child of the Response; no EncryptedAssertion (not supported, and never mixed); every ID
 * unique; ds:Signature only as a direct child of the Response or of the Assertion.
 */
function checkStructure(doc: Document): { response: Element; assertion: Element } {
  const response = doc.documentElement;
  if (!response || response.namespaceURI !== NS.protocol || response.localName !== 'Response') {
    refuse('saml.malformed', 'The message is not a SAML Response.');
  }
  const elements = allElements(doc);
  const ids = new Set<string>();
  let assertions = 0;
  for (const element of elements) {
    if (element.localName === 'Assertion' || element.localName === 'EncryptedAssertion') assertions += 1;
    if (element.localName === 'EncryptedAssertion') {
      refuse('saml.assertionCount', 'Encrypted assertions are not accepted.');
    }
    for (const name of ['ID', 'Id', 'id']) {
      const value = element.getAttribute(name);
      if (!value) continue;
      if (ids.has(value)) refuse('saml.malformed', 'Two elements of the response carry the same ID.');
      ids.add(value);
    }
    if (element.namespaceURI === NS.dsig && element.localName === 'Signature') {
      const parent = element.parentNode as Element | null;
      const allowed =
        parent === response ||
        (parent?.namespaceURI === NS.assertion && parent.localName === 'Assertion' && parent.parentNode === response);
      if (!allowed) refuse('saml.signature', 'A signature sits where SAML does not place one.');
    }
  }
  const direct = childElements(response, NS.assertion, 'Assertion');
  if (assertions !== 1 || direct.length !== 1) {
    refuse('saml.assertionCount', 'The response must carry exactly one assertion.');
  }
  return { response, assertion: direct[0]! };
}

interface TrustedKey {
  pem: string;
}

/**
 * Verifies one enveloped signature of `target` with the trusted keys only (KeyInfo is ignored), and
 * returns the exact canonical XML that the signature covers.
 */
function verifyEnveloped(xml: string, signature: Element, target: Element, keys: TrustedKey[]): string {
  const id = target.getAttribute('ID');
  const uris = Array.from(signature.getElementsByTagNameNS(NS.dsig, 'Reference')).map((r) => (r as Element).getAttribute('URI'));
  if (!id || uris.length !== 1 || uris[0] !== `#${id}`) {
    refuse('saml.signature', 'The signature does not cover exactly the element that carries it.');
  }
  for (const key of keys) {
    const signed = new SignedXml({ publicCert: key.pem, getCertFromKeyInfo: () => null });
    // SAML names its IDs `ID` (saml-core §1.3.4), and checkStructure made every ID/Id/id unique: one
    // lookup instead of xml-crypto's three whole-document XPath scans, its main cost.
    signed.idAttributes = ['ID'];
    try {
      signed.loadSignature(signature);
      if (!signed.checkSignature(xml)) continue;
    } catch {
      continue;
    }
    const references = signed.getReferences();
    const covered = signed.getSignedReferences();
    if (references.length !== 1 || references[0]!.uri !== `#${id}` || covered.length !== 1) {
      refuse('saml.signature', 'The signature does not cover exactly the element that carries it.');
    }
    return covered[0]!;
  }
  return refuse('saml.signature', 'The signature is invalid or was made with a key this organization does not trust.');
}

function asArray(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string');
}

function parseInstant(value: string | null | undefined, what: string): Date | null {
  if (!value) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) refuse('saml.malformed', `The ${what} time is not a valid instant.`);
  return date;
}

// Attribute names as Entra ID, Okta, OneLogin and JumpCloud send them by default or in their
// documented presets; compared case-insensitively. Entra's `…/claims/name` is the UPN, not a display
// name, so it is deliberately absent from DISPLAY_NAME.
const EMAIL = [
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
  'urn:oid:0.9.2342.19200300.100.1.3',
  'email',
  'mail',
  'emailaddress',
  'user.email',
];
const DISPLAY_NAME = [
  'http://schemas.microsoft.com/identity/claims/displayname',
  'urn:oid:2.16.840.1.113730.3.1.241',
  'displayname',
  'name',
  'fullname',
  'user.displayname',
];
const GIVEN_NAME = [
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname',
  'urn:oid:2.5.4.42',
  'givenname',
  'firstname',
  'first_name',
  'user.firstname',
];
const SURNAME = [
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname',
  'urn:oid:2.5.4.4',
  'surname',
  'sn',
  'lastname',
  'last_name',
  'user.lastname',
];

function firstAttribute(attributes: Record<string, string[]>, names: string[]): string | null {
  const byName = new Map(Object.entries(attributes).map(([k, v]) => [k.toLowerCase(), v]));
  for (const name of names) {
    const value = byName.get(name)?.find((v) => v.trim() !== '');
    if (value) return value.trim();
  }
  return null;
}

function resolveEmail(attributes: Record<string, string[]>, nameId: string, nameIdFormat: string | null): string | null {
  const email = firstAttribute(attributes, EMAIL) ?? (nameIdFormat === NAMEID_EMAIL ? nameId : null);
  return email && /^[^\s@]+@[^\s@]+$/.test(email) ? email : null;
}

function resolveName(attributes: Record<string, string[]>): string | null {
  const display = firstAttribute(attributes, DISPLAY_NAME);
  if (display) return display;
  const full = [firstAttribute(attributes, GIVEN_NAME), firstAttribute(attributes, SURNAME)].filter(Boolean).join(' ');
  return full || null;
}

/**
 * The identity part of samlify's login-response fields. Its `response` field reads the unsigned
 * envelope; `conditions` and `audience` are checked below from the same verified XML, so not read twice.
 */
const IDENTITY_FIELDS = new Set(['issuer', 'nameID', 'sessionIndex', 'attributes']);
function identityFields(verifiedAssertion: string) {
  return samlify.Extractor.loginResponseFields(verifiedAssertion).filter((field) => IDENTITY_FIELDS.has(field.key));
}

/** One SP for one organization's SAML configuration (cache it per config revision). */
export function createSamlServiceProvider(settings: SamlSettings): SamlServiceProvider {
  const certificates = settings.idp.certificates.map(normalizeCertificate);
  if (certificates.length < 1 || certificates.length > 2) {
    refuse('sso.invalidConfiguration', 'Give one IdP signing certificate, or two during a rotation.');
  }
  if (!Number.isFinite(settings.clockSkewSeconds) || settings.clockSkewSeconds < 0) {
    refuse('sso.invalidConfiguration', 'The clock skew must be a non-negative number of seconds.');
  }
  const skewMs = settings.clockSkewSeconds * 1000;
  const samlBinding = BINDING[settings.binding];

  const sp = samlify.ServiceProvider({
    entityID: settings.spEntityId,
    assertionConsumerService: [{ Binding: BINDING.post, Location: settings.acsUrl }],
    wantAssertionsSigned: settings.wantAssertionsSigned,
    authnRequestsSigned: false,
    ...(settings.nameIdFormat ? { nameIDFormat: [settings.nameIdFormat] } : {}),
  });
  const idp = samlify.IdentityProvider({
    entityID: settings.idp.entityId,
    signingCert: certificates.map((c) => c.base64),
    singleSignOnService: [{ Binding: samlBinding, Location: settings.idp.ssoUrl }],
    wantAuthnRequestsSigned: false,
  });
  const keys: TrustedKey[] = certificates.map((c) => ({ pem: c.pem }));

  return {
    metadata: () => sp.getMetadata(),

    createLoginRequest(relayState) {
      const request = sp.createLoginRequest(idp, settings.binding, { relayState }) as {
        id: string;
        context: string;
        entityEndpoint?: string;
      };
      if (settings.binding === 'redirect') return { requestId: request.id, redirectUrl: request.context };
      return {
        requestId: request.id,
        form: { action: request.entityEndpoint ?? settings.idp.ssoUrl, fields: { SAMLRequest: request.context, RelayState: relayState } },
      };
    },

    async validateResponse(body, expect) {
      const now = expect.now ?? new Date();
      const encoded = typeof body.SAMLResponse === 'string' ? body.SAMLResponse.replace(/\s+/g, '') : '';
      if (!encoded || encoded.length > MAX_RESPONSE_BASE64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
        refuse('saml.malformed', 'SAMLResponse is missing, too large or not base64.');
      }
      const xml = Buffer.from(encoded, 'base64').toString('utf8');
      // Before any parser sees it: no entity expansion, no external DTD, ever (saml-core §1.3).
      if (/<!DOCTYPE/i.test(xml)) refuse('saml.doctype', 'The response contains a DOCTYPE, which SAML forbids.');
      const doc = parseXml(xml, 'saml.malformed');
      await samlSchemaValidator.validate(xml).catch((error: unknown) => {
        refuse('saml.schema', 'The response does not follow the SAML schema.', error);
      });
      const root = doc.documentElement;
      // Read before the structure checks: an IdP's error response usually carries no assertion, and
      // its status is the useful refusal.
      const statusCode = root
        ? childElements(childElements(root, NS.protocol, 'Status')[0] ?? root, NS.protocol, 'StatusCode')[0]
        : undefined;
      if (statusCode?.getAttribute('Value') !== STATUS_SUCCESS) {
        refuse('saml.status', 'The IdP reported that the sign-in failed.');
      }
      const { response, assertion } = checkStructure(doc);

      const responseSignatures = childElements(response, NS.dsig, 'Signature');
      const assertionSignatures = childElements(assertion, NS.dsig, 'Signature');
      if (responseSignatures.length > 1 || assertionSignatures.length > 1) {
        refuse('saml.signature', 'An element carries more than one signature.');
      }
      if (responseSignatures.length + assertionSignatures.length === 0) {
        refuse('saml.signature', 'The response is not signed.');
      }
      if (settings.wantAssertionsSigned && assertionSignatures.length === 0) {
        refuse('saml.unsignedAssertion', 'The assertion itself must be signed.');
      }
      for (const signature of [...responseSignatures, ...assertionSignatures]) {
        checkAlgorithms(signature, settings.minSignatureAlgorithm);
      }

      // Every signature present must verify with a trusted key; samlify's parseLoginResponse would
      // stop at the first that does (so a broken one beside a good one passes) and try only the
      // first certificate when KeyInfo is absent.
      const signedAssertion = assertionSignatures[0]
        ? verifyEnveloped(xml, assertionSignatures[0], assertion, keys)
        : null;
      const signedResponse = responseSignatures[0] ? verifyEnveloped(xml, responseSignatures[0], response, keys) : null;
      let verifiedAssertion = signedAssertion;
      if (!verifiedAssertion) {
        const signedDoc = parseXml(signedResponse!, 'saml.signature');
        const inner = childElements(signedDoc.documentElement!, NS.assertion, 'Assertion');
        if (inner.length !== 1) refuse('saml.assertionCount', 'The response must carry exactly one assertion.');
        verifiedAssertion = inner[0]!.toString();
      }

      // Identity: samlify's own login-response extraction, run on the verified assertion only, as
      // parseLoginResponse does after its signature check.
      const extracted = samlify.Extractor.extract(verifiedAssertion, identityFields(verifiedAssertion)) as {
        issuer?: unknown;
        nameID?: unknown;
        sessionIndex?: { sessionIndex?: string; sessionNotOnOrAfter?: string } | unknown[];
        attributes?: Record<string, unknown>;
      };
      const nameId = typeof extracted.nameID === 'string' ? extracted.nameID : '';
      if (!nameId.trim()) refuse('saml.subjectMissing', 'The assertion names no subject.');

      const responseIssuer = childElements(response, NS.assertion, 'Issuer')[0]?.textContent?.trim();
      if (extracted.issuer !== settings.idp.entityId || (responseIssuer !== undefined && responseIssuer !== settings.idp.entityId)) {
        refuse('saml.issuer', 'The response was issued by another identity provider.');
      }

      // The checks below walk the verified assertion's canonical XML: signed bytes only.
      const verified = parseXml(verifiedAssertion, 'saml.malformed').documentElement!;
      const assertionId = verified.getAttribute('ID');
      if (!assertionId) refuse('saml.malformed', 'The assertion has no ID.');

      // Audience: every AudienceRestriction must name us (saml-core §2.5.1.4).
      const conditions = childElements(verified, NS.assertion, 'Conditions')[0];
      const restrictions = conditions ? childElements(conditions, NS.assertion, 'AudienceRestriction') : [];
      const audienceOk =
        restrictions.length > 0 &&
        restrictions.every((r) =>
          childElements(r, NS.assertion, 'Audience').some((a) => a.textContent?.trim() === settings.spEntityId),
        );
      if (!audienceOk) refuse('saml.audience', `The assertion is meant for another service provider than ${settings.spEntityId}.`);

      const nowMs = now.getTime();
      const notBefore = parseInstant(conditions?.getAttribute('NotBefore'), 'NotBefore');
      const conditionsEnd = parseInstant(conditions?.getAttribute('NotOnOrAfter'), 'NotOnOrAfter');
      if (notBefore && nowMs < notBefore.getTime() - skewMs) refuse('saml.notYetValid', 'The assertion is not valid yet: check the clocks.');
      if (conditionsEnd && nowMs >= conditionsEnd.getTime() + skewMs) refuse('saml.expired', 'The assertion has expired.');
      const session = Array.isArray(extracted.sessionIndex) ? undefined : extracted.sessionIndex;
      const sessionEnd = parseInstant(session?.sessionNotOnOrAfter, 'SessionNotOnOrAfter');
      if (sessionEnd && nowMs >= sessionEnd.getTime() + skewMs) refuse('saml.expired', 'The IdP session has expired.');

      // Bearer confirmation (saml-profiles §4.1.4.2–3): Recipient is our ACS, NotOnOrAfter ahead.
      const subject = childElements(verified, NS.assertion, 'Subject')[0];
      const bearers = (subject ? childElements(subject, NS.assertion, 'SubjectConfirmation') : []).filter(
        (c) => c.getAttribute('Method') === BEARER,
      );
      if (bearers.length !== 1) refuse('saml.subjectMissing', 'The assertion must carry one bearer subject confirmation.');
      const confirmation = childElements(bearers[0]!, NS.assertion, 'SubjectConfirmationData')[0];
      if (!confirmation || confirmation.getAttribute('Recipient') !== settings.acsUrl) {
        refuse('saml.recipient', 'The assertion was sent to another address than this ACS.');
      }
      const confirmationEnd = parseInstant(confirmation.getAttribute('NotOnOrAfter'), 'SubjectConfirmationData NotOnOrAfter');
      if (!confirmationEnd) refuse('saml.expired', 'The subject confirmation has no expiry.');
      if (nowMs >= confirmationEnd.getTime() + skewMs) refuse('saml.expired', 'The subject confirmation has expired.');
      const confirmationStart = parseInstant(confirmation.getAttribute('NotBefore'), 'SubjectConfirmationData NotBefore');
      if (confirmationStart && nowMs < confirmationStart.getTime() - skewMs) refuse('saml.notYetValid', 'The subject confirmation is not valid yet.');

      // InResponseTo: the signed one in the assertion, and the Response's, must both match.
      const inResponseTo = [confirmation.getAttribute('InResponseTo'), response.getAttribute('InResponseTo')].filter(
        (v): v is string => !!v,
      );
      if (expect.requestId === null) {
        if (!settings.allowUnsolicited) refuse('saml.unsolicited', 'This organization does not accept IdP-initiated sign-ins.');
        if (inResponseTo.length > 0) refuse('saml.inResponseTo', 'The response answers a request this sign-in did not make.');
      } else if (inResponseTo.length === 0 || inResponseTo.some((v) => v !== expect.requestId)) {
        refuse('saml.inResponseTo', 'The response does not answer this sign-in request.');
      }

      // Destination: required on a signed Response (saml-bindings §3.5.5.2), always our ACS.
      const destination = response.getAttribute('Destination');
      if ((destination !== null && destination !== '') || signedResponse) {
        if (destination !== settings.acsUrl) refuse('saml.destination', 'The response was sent to another address than this ACS.');
      }

      const attributes: Record<string, string[]> = {};
      for (const [name, value] of Object.entries(extracted.attributes ?? {})) attributes[name] = asArray(value);
      const subjectNameId = subject ? childElements(subject, NS.assertion, 'NameID')[0] : undefined;
      const nameIdFormat = subjectNameId?.getAttribute('Format') || null;
      const ends = [conditionsEnd, confirmationEnd].filter((d): d is Date => d !== null).map((d) => d.getTime());
      return {
        issuer: settings.idp.entityId,
        nameId,
        nameIdFormat,
        assertionId: assertionId!,
        notOnOrAfter: new Date(Math.min(...ends) + skewMs),
        inResponseTo: expect.requestId,
        sessionIndex: session?.sessionIndex ?? null,
        attributes,
        email: resolveEmail(attributes, nameId, nameIdFormat),
        name: resolveName(attributes),
      };
    },
  };
}
