import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import { beforeAll, describe, expect, test } from 'vitest';
import { SignedXml } from 'xml-crypto';
import { SsoError, type SsoErrorCode } from '../../src/sso/errors.js';
import {
  createSamlServiceProvider,
  parseIdpMetadata,
  type SamlIdentity,
  type SamlSettings,
} from '../../src/sso/saml.js';
import { validateSamlSchema } from '../../src/sso/xsd.js';
import { createTestIdp, decode, encode, generateKeyPair, type KeyPair, type TestIdp } from '../support/saml-idp.js';

const SP_ENTITY_ID = 'https://portico.test/sso/saml/acme';
const ACS_URL = 'https://portico.test/sso/saml/acme/acs';
const REQUEST_ID = '_req-0001';
const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

let idp: TestIdp;
let rotated: KeyPair;
let stranger: KeyPair;

beforeAll(async () => {
  idp = await createTestIdp({ acsUrl: ACS_URL, spEntityId: SP_ENTITY_ID });
  rotated = generateKeyPair('Portico Test IdP (next)');
  stranger = generateKeyPair('Someone else');
});

function settings(overrides: Partial<SamlSettings> = {}): SamlSettings {
  return {
    spEntityId: SP_ENTITY_ID,
    acsUrl: ACS_URL,
    idp: { entityId: idp.entityId, ssoUrl: idp.ssoUrl, certificates: [idp.keys.certificatePem] },
    binding: 'redirect',
    allowUnsolicited: false,
    wantAssertionsSigned: true,
    minSignatureAlgorithm: 'sha256',
    clockSkewSeconds: 120,
    ...overrides,
  };
}

function validate(
  samlResponse: string,
  expectation: { requestId?: string | null; now?: Date } = {},
  overrides: Partial<SamlSettings> = {},
): Promise<SamlIdentity> {
  const requestId = expectation.requestId === undefined ? REQUEST_ID : expectation.requestId;
  return createSamlServiceProvider(settings(overrides)).validateResponse(
    { SAMLResponse: samlResponse },
    { requestId, ...(expectation.now ? { now: expectation.now } : {}) },
  );
}

async function refusal(promise: Promise<unknown>): Promise<SsoErrorCode> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the response was accepted').toBeInstanceOf(SsoError);
  return (error as SsoError).code;
}

const signedXml = (options: Parameters<TestIdp['build']>[0] = {}) =>
  idp.signResponse(idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID, ...options })));

const parse = (xml: string) => new DOMParser().parseFromString(xml, 'text/xml');
const serialize = (node: Node) => new XMLSerializer().serializeToString(node);
const PROTOCOL = 'urn:oasis:names:tc:SAML:2.0:protocol';
const ASSERTION = 'urn:oasis:names:tc:SAML:2.0:assertion';
const DSIG = 'http://www.w3.org/2000/09/xmldsig#';
const first = (doc: Document | Element, ns: string, name: string) => doc.getElementsByTagNameNS(ns, name)[0]!;

/** An assertion for mallory, signed by nobody, in the IdP's shape. */
function evilAssertion(id = '_evil'): string {
  const xml = idp.build({ inResponseTo: REQUEST_ID, nameId: 'mallory@evil.example', assertionId: id });
  return serialize(first(parse(xml), ASSERTION, 'Assertion'));
}

function insert(xml: string, edit: (doc: Document) => void): string {
  const doc = parse(xml);
  edit(doc);
  return serialize(doc);
}

const fragment = (doc: Document, xml: string) => doc.importNode(parse(xml).documentElement!, true);

describe('a valid response', () => {
  test('an SP-initiated sign-in through a real AuthnRequest yields the signed identity', async () => {
    const sp = createSamlServiceProvider(settings());
    const login = sp.createLoginRequest('relay-123');
    expect(login.redirectUrl).toContain('RelayState=relay-123');
    const request = await idp.readAuthnRequest(sp.metadata(), login.redirectUrl!);
    expect(request).toEqual({ id: login.requestId, issuer: SP_ENTITY_ID });

    const now = new Date();
    const identity = await sp.validateResponse(
      { SAMLResponse: idp.response({ inResponseTo: login.requestId, now, assertionId: '_a1', sessionIndex: '_s1' }), RelayState: 'relay-123' },
      { requestId: login.requestId, now },
    );
    expect(identity).toEqual({
      issuer: idp.entityId,
      nameId: 'ada@example.com',
      nameIdFormat: EMAIL_FORMAT,
      assertionId: '_a1',
      notOnOrAfter: new Date(now.getTime() + 5 * 60_000 + 120_000),
      inResponseTo: login.requestId,
      sessionIndex: '_s1',
      attributes: { email: ['ada@example.com'], displayName: ['Ada Lovelace'] },
      email: 'ada@example.com',
      name: 'Ada Lovelace',
    });
  });

  test('the POST binding gives a form for the IdP with the request and RelayState', () => {
    const login = createSamlServiceProvider(settings({ binding: 'post' })).createLoginRequest('relay-9');
    expect(login.form?.action).toBe(idp.ssoUrl);
    expect(login.form?.fields.RelayState).toBe('relay-9');
    expect(decode(login.form!.fields.SAMLRequest!)).toContain(`ID="${login.requestId}"`);
  });

  test('SP metadata names the entity id, the ACS and that assertions must be signed', () => {
    const xml = createSamlServiceProvider(settings()).metadata();
    expect(xml).toContain(`entityID="${SP_ENTITY_ID}"`);
    expect(xml).toContain(`Location="${ACS_URL}"`);
    expect(xml).toContain('WantAssertionsSigned="true"');
  });

  test('an assertion-only signature is accepted, and so is a Response without Destination', async () => {
    const xml = idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID, destination: null }));
    await expect(validate(encode(xml))).resolves.toMatchObject({ nameId: 'ada@example.com' });
  });

  test('a response-only signature is accepted when the organization does not want signed assertions', async () => {
    await expect(validate(idp.response({ inResponseTo: REQUEST_ID, sign: 'response' }), {}, { wantAssertionsSigned: false })).resolves.toMatchObject({
      nameId: 'ada@example.com',
    });
  });

  test.each([
    ['Entra ID', { 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress': ['ada@contoso.com'], 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name': ['ada@contoso.onmicrosoft.com'], 'http://schemas.microsoft.com/identity/claims/displayname': ['Ada Lovelace'] }, 'ada@contoso.com', 'Ada Lovelace'],
    ['Entra ID without display name', { 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name': ['ada@contoso.onmicrosoft.com'], 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname': ['Ada'], 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname': ['Lovelace'] }, null, 'Ada Lovelace'],
    ['Okta', { email: ['ada@okta.example'], firstName: ['Ada'], lastName: ['Lovelace'] }, 'ada@okta.example', 'Ada Lovelace'],
    ['OneLogin', { 'User.email': ['ada@onelogin.example'], 'User.FirstName': ['Ada'], 'User.LastName': ['Lovelace'] }, 'ada@onelogin.example', 'Ada Lovelace'],
    ['JumpCloud', { email: ['ada@jc.example'], firstname: ['Ada'], lastname: ['Lovelace'] }, 'ada@jc.example', 'Ada Lovelace'],
    ['an LDAP-style IdP', { mail: ['ada@ldap.example'], 'urn:oid:2.16.840.1.113730.3.1.241': ['Ada L.'] }, 'ada@ldap.example', 'Ada L.'],
  ])('email and name are read from %s claims', async (_idp, attributes, email, name) => {
    const xml = signedXml({ attributes, nameId: 'opaque-123', nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent' });
    const identity = await validate(encode(xml));
    expect(identity.email).toBe(email);
    expect(identity.name).toBe(name);
  });

  test('an email-format NameID is the email when no attribute carries one', async () => {
    const identity = await validate(encode(signedXml({ attributes: {}, nameId: 'grace@example.com' })));
    expect(identity).toMatchObject({ email: 'grace@example.com', name: null, attributes: {} });
  });
});

describe('each check refuses', () => {
  test('a body that is not base64 or not XML is malformed', async () => {
    expect(await refusal(validate('%%%not-base64'))).toBe('saml.malformed');
    expect(await refusal(validate(encode('<samlp:Response')))).toBe('saml.malformed');
    expect(await refusal(validate(''))).toBe('saml.malformed');
  });

  test('a response of invalid structure fails the schema', async () => {
    // Signed after the damage: only the schema stands in the way.
    const noVersion = idp.signResponse(idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID }).replace(/ Version="2.0"/, '')));
    expect(await refusal(validate(encode(noVersion)))).toBe('saml.schema');
    const unknownChild = idp.signResponse(
      idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID }).replace('<saml:Conditions', '<saml:Bogus/><saml:Conditions')),
    );
    expect(await refusal(validate(encode(unknownChild)))).toBe('saml.schema');
  });

  test('any DOCTYPE is refused before parsing, entity or not', async () => {
    const xml = signedXml();
    const bomb = `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>${xml}`;
    expect(await refusal(validate(encode(bomb)))).toBe('saml.doctype');
    expect(await refusal(validate(encode(`<!doctype Response>${xml}`)))).toBe('saml.doctype');
    expect(await refusal(validate(encode(`<!DOCTYPE r SYSTEM "file:///etc/passwd">${xml}`)))).toBe('saml.doctype');
  });

  test('a Status other than Success is refused', async () => {
    const failed = idp.build({ inResponseTo: REQUEST_ID, statusCode: 'urn:oasis:names:tc:SAML:2.0:status:Responder' });
    expect(await refusal(validate(encode(failed)))).toBe('saml.status');
    expect(await refusal(validate(encode(idp.signResponse(failed))))).toBe('saml.status');
  });

  test('an unsigned response is refused', async () => {
    expect(await refusal(validate(idp.response({ inResponseTo: REQUEST_ID, sign: 'none' }), {}, { wantAssertionsSigned: false }))).toBe('saml.signature');
  });

  test('a response-only signature is refused when assertions must be signed (samlify accepts it)', async () => {
    expect(await refusal(validate(idp.response({ inResponseTo: REQUEST_ID, sign: 'response' })))).toBe('saml.unsignedAssertion');
  });

  test('a broken assertion signature under a valid response signature is refused', async () => {
    const assertionSigned = idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID }));
    const broken = assertionSigned.replace(/<ds:SignatureValue>(.)/, (_m, c: string) => `<ds:SignatureValue>${c === 'A' ? 'B' : 'A'}`);
    const xml = idp.signResponse(broken);
    for (const want of [true, false]) expect(await refusal(validate(encode(xml), {}, { wantAssertionsSigned: want }))).toBe('saml.signature');
  });

  test('content changed after signing is refused', async () => {
    const tampered = signedXml().replace('ada@example.com</saml:NameID>', 'admin@example.com</saml:NameID>');
    expect(await refusal(validate(encode(tampered)))).toBe('saml.signature');
    const tamperedAttribute = signedXml().replace('>Ada Lovelace<', '>Eve<');
    expect(await refusal(validate(encode(tamperedAttribute)))).toBe('saml.signature');
  });

  test('a signature by an untrusted key is refused, even when its KeyInfo carries the trusted certificate', async () => {
    const foreign = idp.response({ inResponseTo: REQUEST_ID, signing: { key: stranger } });
    expect(await refusal(validate(foreign))).toBe('saml.signature');
    const claimed = idp.signResponse(idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID }), { key: stranger }), { key: stranger })
      .replaceAll(stranger.certificateBase64, idp.keys.certificateBase64);
    expect(await refusal(validate(encode(claimed)))).toBe('saml.signature');
    const noKeyInfo = idp.response({ inResponseTo: REQUEST_ID, signing: { key: stranger, omitKeyInfo: true } });
    expect(await refusal(validate(noKeyInfo))).toBe('saml.signature');
  });

  test('SHA-1 signatures and digests are refused unless the organization opts in', async () => {
    const sha1 = idp.response({ inResponseTo: REQUEST_ID, signing: { algorithm: 'sha1' } });
    expect(await refusal(validate(sha1))).toBe('saml.weakAlgorithm');
    await expect(validate(sha1, {}, { minSignatureAlgorithm: 'sha1' })).resolves.toMatchObject({ nameId: 'ada@example.com' });
    const sha1Digest = idp.response({ inResponseTo: REQUEST_ID, signing: { algorithm: 'sha256', digest: 'sha1' } });
    expect(await refusal(validate(sha1Digest))).toBe('saml.weakAlgorithm');
    expect(await refusal(validate(idp.response({ inResponseTo: REQUEST_ID }), {}, { minSignatureAlgorithm: 'sha512' }))).toBe('saml.weakAlgorithm');
    await expect(
      validate(idp.response({ inResponseTo: REQUEST_ID, signing: { algorithm: 'sha512' } }), {}, { minSignatureAlgorithm: 'sha512' }),
    ).resolves.toBeTruthy();
  });

  test('an Issuer other than the IdP entity id is refused, in the assertion or on the Response', async () => {
    expect(await refusal(validate(encode(signedXml({ issuer: 'https://evil.example/idp' }))))).toBe('saml.issuer');
    expect(await refusal(validate(encode(signedXml({ responseIssuer: 'https://evil.example/idp' }))))).toBe('saml.issuer');
  });

  test('an Audience without our SP entity id is refused', async () => {
    expect(await refusal(validate(encode(signedXml({ audience: 'https://other-sp.example' }))))).toBe('saml.audience');
    const twoRestrictions = idp.signResponse(
      idp.signAssertion(
        idp.build({ inResponseTo: REQUEST_ID }).replace(
          '</saml:AudienceRestriction>',
          '</saml:AudienceRestriction><saml:AudienceRestriction><saml:Audience>https://other-sp.example</saml:Audience></saml:AudienceRestriction>',
        ),
      ),
    );
    expect(await refusal(validate(encode(twoRestrictions)))).toBe('saml.audience');
  });

  test('an assertion without a NameID or without a bearer confirmation is refused', async () => {
    const noNameId = idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID }).replace(/<saml:NameID[^>]*>[^<]*<\/saml:NameID>/, ''));
    expect(await refusal(validate(encode(noNameId)))).toBe('saml.subjectMissing');
    const holderOfKey = idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID }).replace(':cm:bearer', ':cm:holder-of-key'));
    expect(await refusal(validate(encode(holderOfKey)))).toBe('saml.subjectMissing');
  });

  test('a SubjectConfirmationData Recipient other than our ACS is refused', async () => {
    expect(await refusal(validate(encode(signedXml({ recipient: 'https://portico.test/sso/saml/other/acs' }))))).toBe('saml.recipient');
  });

  test('a subject confirmation past its NotOnOrAfter is refused', async () => {
    const now = new Date();
    const xml = signedXml({ now, subjectNotOnOrAfter: new Date(now.getTime() + 60_000) });
    expect(await refusal(validate(encode(xml), { now: new Date(now.getTime() + 60_000 + 121_000) }))).toBe('saml.expired');
  });

  test('a Destination other than our ACS is refused, and a signed Response must carry one', async () => {
    expect(await refusal(validate(encode(signedXml({ destination: 'https://evil.example/acs' }))))).toBe('saml.destination');
    expect(await refusal(validate(encode(signedXml({ destination: null }))))).toBe('saml.destination');
  });

  test('InResponseTo must equal the request id of this sign-in', async () => {
    expect(await refusal(validate(encode(signedXml({ inResponseTo: '_another-request' }))))).toBe('saml.inResponseTo');
    expect(await refusal(validate(encode(signedXml({ inResponseTo: null }))))).toBe('saml.inResponseTo');
    // The Response's InResponseTo alone differing (assertion-only signature) is refused too.
    const mixed = idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID })).replace(/(<samlp:Response[^>]*InResponseTo=")[^"]*/, '$1_another');
    expect(await refusal(validate(encode(mixed)))).toBe('saml.inResponseTo');
  });

  test('an unsolicited response is refused unless the organization allows IdP-initiated sign-in', async () => {
    const unsolicited = encode(signedXml({ inResponseTo: null }));
    expect(await refusal(validate(unsolicited, { requestId: null }))).toBe('saml.unsolicited');
    await expect(validate(unsolicited, { requestId: null }, { allowUnsolicited: true })).resolves.toMatchObject({ inResponseTo: null });
  });

  test('a response answering a request when none was expected is refused', async () => {
    expect(await refusal(validate(encode(signedXml()), { requestId: null }, { allowUnsolicited: true }))).toBe('saml.inResponseTo');
  });
});

describe('clock skew', () => {
  const at = (base: Date, seconds: number) => new Date(base.getTime() + seconds * 1000);

  test('NotBefore ahead of our clock is accepted within the skew and refused beyond it', async () => {
    const issued = new Date();
    const xml = encode(signedXml({ now: issued, notBefore: issued }));
    await expect(validate(xml, { now: at(issued, -119) })).resolves.toBeTruthy();
    expect(await refusal(validate(xml, { now: at(issued, -121) }))).toBe('saml.notYetValid');
    expect(await refusal(validate(xml, { now: at(issued, -1) }, { clockSkewSeconds: 0 }))).toBe('saml.notYetValid');
  });

  test('NotOnOrAfter behind our clock is accepted within the skew and refused beyond it', async () => {
    const issued = new Date();
    const end = at(issued, 60);
    const xml = encode(signedXml({ now: issued, notOnOrAfter: end, subjectNotOnOrAfter: at(issued, 600) }));
    await expect(validate(xml, { now: at(end, 119) })).resolves.toMatchObject({ notOnOrAfter: at(end, 120) });
    expect(await refusal(validate(xml, { now: at(end, 121) }))).toBe('saml.expired');
    expect(await refusal(validate(xml, { now: end }, { clockSkewSeconds: 0 }))).toBe('saml.expired');
  });
});

describe('signature wrapping', () => {
  const wrapped = async (xml: string, codes: SsoErrorCode[] = ['saml.assertionCount']) => {
    for (const wantAssertionsSigned of [true, false]) {
      expect(codes).toContain(await refusal(validate(encode(xml), {}, { wantAssertionsSigned })));
    }
  };

  test('an evil assertion inside the signed assertion signature’s ds:Object is refused', async () => {
    const xml = insert(signedXml(), (doc) => {
      const signature = first(first(doc, ASSERTION, 'Assertion'), DSIG, 'Signature');
      const object = doc.createElementNS(DSIG, 'ds:Object');
      object.appendChild(fragment(doc, evilAssertion()));
      signature.appendChild(object);
    });
    await wrapped(xml);
  });

  test('an evil assertion in the Response Extensions is refused', async () => {
    const xml = insert(signedXml(), (doc) => {
      const extensions = doc.createElementNS(PROTOCOL, 'samlp:Extensions');
      extensions.appendChild(fragment(doc, evilAssertion()));
      doc.documentElement!.insertBefore(extensions, first(doc, PROTOCOL, 'Status'));
    });
    await wrapped(xml);
  });

  test('a second unsigned assertion before or after the signed one is refused', async () => {
    for (const where of ['before', 'after'] as const) {
      const xml = insert(idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID })), (doc) => {
        const signed = first(doc, ASSERTION, 'Assertion');
        doc.documentElement!.insertBefore(fragment(doc, evilAssertion()), where === 'before' ? signed : signed.nextSibling);
      });
      await wrapped(xml);
    }
  });

  test('two assertions under one valid response signature are refused', async () => {
    await wrapped(idp.signResponse(idp.build({ inResponseTo: REQUEST_ID, extraAssertions: [evilAssertion()] })));
  });

  test('the signed assertion moved under a fake parent with an evil one in its place is refused', async () => {
    const parents = [
      // SAML's own Advice inside the evil assertion
      (doc: Document, signed: Node, evil: Element) => {
        const advice = doc.createElementNS(ASSERTION, 'saml:Advice');
        advice.appendChild(signed);
        evil.insertBefore(advice, first(evil, ASSERTION, 'AuthnStatement'));
      },
      // The evil SubjectConfirmationData (samlify's own wrapping detector looks here)
      (_doc: Document, signed: Node, evil: Element) => {
        first(evil, ASSERTION, 'SubjectConfirmationData').appendChild(signed);
      },
      // The Response Extensions
      (doc: Document, signed: Node) => {
        const extensions = doc.createElementNS(PROTOCOL, 'samlp:Extensions');
        extensions.appendChild(signed);
        doc.documentElement!.insertBefore(extensions, first(doc, PROTOCOL, 'Status'));
      },
    ];
    for (const hide of parents) {
      const xml = insert(idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID })), (doc) => {
        const signed = first(doc, ASSERTION, 'Assertion');
        const evil = fragment(doc, evilAssertion()) as Element;
        doc.documentElement!.replaceChild(evil, signed);
        hide(doc, signed, evil);
      });
      // samlify's own detector answers first for the SubjectConfirmationData hiding place.
      await wrapped(xml, ['saml.assertionCount', 'saml.signature']);
    }
  });

  test('an evil Response wrapping the original signed Response is refused', async () => {
    const original = parse(signedXml()).documentElement!;
    const xml = insert(idp.build({ inResponseTo: REQUEST_ID, nameId: 'mallory@evil.example' }), (doc) => {
      const extensions = doc.createElementNS(PROTOCOL, 'samlp:Extensions');
      extensions.appendChild(doc.importNode(original, true));
      doc.documentElement!.insertBefore(extensions, first(doc, PROTOCOL, 'Status'));
      // The original signature, moved up, still names the original Response's ID.
      const signature = first(original, DSIG, 'Signature');
      doc.documentElement!.insertBefore(doc.importNode(signature, true), extensions);
    });
    // Two Responses' ID attributes of type xs:ID: the schema validator already refuses duplicates.
    await wrapped(xml, ['saml.schema', 'saml.assertionCount', 'saml.malformed', 'saml.signature']);
  });

  test('a Response signature that references another element than its parent is refused', async () => {
    // Valid xml-crypto signature, placed on the Response but covering only the assertion: the
    // Response's own content (Destination, InResponseTo, Issuer) stays unsigned.
    const unsignedResponse = idp.build({ inResponseTo: REQUEST_ID });
    const signer = new SignedXml({
      privateKey: idp.keys.privateKeyPem,
      publicCert: idp.keys.certificatePem,
      signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
      canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
    });
    signer.addReference({
      xpath: "/*[local-name(.)='Response']/*[local-name(.)='Assertion']",
      digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
      transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
    });
    signer.computeSignature(unsignedResponse, {
      prefix: 'ds',
      location: { reference: "/*[local-name(.)='Response']/*[local-name(.)='Issuer']", action: 'after' },
    });
    expect(await refusal(validate(encode(signer.getSignedXml()), {}, { wantAssertionsSigned: false }))).toBe('saml.signature');
  });

  test('the assertion signature copied onto an evil assertion is refused', async () => {
    const xml = insert(idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID })), (doc) => {
      const signed = first(doc, ASSERTION, 'Assertion');
      const evil = fragment(doc, evilAssertion()) as Element;
      evil.insertBefore(first(signed, DSIG, 'Signature'), first(evil, ASSERTION, 'Subject'));
      doc.documentElement!.replaceChild(evil, signed);
    });
    expect(await refusal(validate(encode(xml)))).toBe('saml.signature');
  });

  test('duplicate IDs are refused', async () => {
    const signed = signedXml();
    const assertionId = first(parse(signed), ASSERTION, 'Assertion').getAttribute('ID')!;
    const xml = insert(signed, (doc) => {
      const extensions = doc.createElementNS(PROTOCOL, 'samlp:Extensions');
      const decoy = doc.createElementNS('urn:example:decoy', 'x:Decoy');
      decoy.setAttribute('ID', assertionId);
      extensions.appendChild(decoy);
      doc.documentElement!.insertBefore(extensions, first(doc, PROTOCOL, 'Status'));
    });
    expect(await refusal(validate(encode(xml)))).toBe('saml.malformed');
    // The evil assertion takes the signed one's ID.
    const twin = insert(signed, (doc) => {
      doc.documentElement!.appendChild(fragment(doc, evilAssertion(assertionId)));
    });
    expect(['saml.schema', 'saml.malformed', 'saml.assertionCount']).toContain(await refusal(validate(encode(twin))));
  });

  test('a signature outside the Response or Assertion is refused', async () => {
    const xml = insert(signedXml(), (doc) => {
      const signature = first(doc.documentElement!, DSIG, 'Signature');
      const extensions = doc.createElementNS(PROTOCOL, 'samlp:Extensions');
      extensions.appendChild(signature.cloneNode(true));
      doc.documentElement!.insertBefore(extensions, first(doc, PROTOCOL, 'Status'));
    });
    expect(await refusal(validate(encode(xml)))).toBe('saml.signature');
  });

  test('an EncryptedAssertion beside the signed assertion is refused', async () => {
    const xml = insert(signedXml(), (doc) => {
      const encrypted = doc.createElementNS(ASSERTION, 'saml:EncryptedAssertion');
      const data = doc.createElementNS('http://www.w3.org/2001/04/xmlenc#', 'xenc:EncryptedData');
      const cipher = doc.createElementNS('http://www.w3.org/2001/04/xmlenc#', 'xenc:CipherData');
      const value = doc.createElementNS('http://www.w3.org/2001/04/xmlenc#', 'xenc:CipherValue');
      value.appendChild(doc.createTextNode('AAAA'));
      cipher.appendChild(value);
      data.appendChild(cipher);
      encrypted.appendChild(data);
      doc.documentElement!.appendChild(encrypted);
    });
    expect(await refusal(validate(encode(xml)))).toBe('saml.assertionCount');
  });

  test('a comment in the NameID never shortens the signed identity', async () => {
    // The IdP signed `user@evil.com.example.com`; exclusive c14n drops comments, so the signature
    // still verifies after the comment is added. Identity must be the whole signed value.
    const signed = idp.signAssertion(idp.build({ inResponseTo: REQUEST_ID, nameId: 'user@evil.com.example.com', attributes: { email: ['user@evil.com.example.com'] } }));
    const injected = signed.replaceAll('user@evil.com.example.com<', 'user@evil.com<!---->.example.com<');
    expect(injected).toContain('user@evil.com<!---->.example.com</saml:NameID>');
    // What a walk of the raw XML would read: the first text node only.
    expect(first(parse(injected), ASSERTION, 'NameID').firstChild!.nodeValue).toBe('user@evil.com');
    for (const xml of [injected, idp.signResponse(injected)]) {
      await expect(validate(encode(xml))).resolves.toMatchObject({
        nameId: 'user@evil.com.example.com',
        email: 'user@evil.com.example.com',
        attributes: { email: ['user@evil.com.example.com'] },
      });
    }
    // Processing instructions survive c14n, so one inserted breaks the signature instead.
    const pi = signed.replace('user@evil.com.example.com</saml:NameID>', 'user@evil.com<?x y?>.example.com</saml:NameID>');
    expect(await refusal(validate(encode(pi)))).toBe('saml.signature');
  });
});

describe('certificate rotation', () => {
  test('with two certificates, a response signed by either key is accepted; a third key is not', async () => {
    const both = { idp: { entityId: idp.entityId, ssoUrl: idp.ssoUrl, certificates: [idp.keys.certificatePem, rotated.certificateBase64] } };
    await expect(validate(idp.response({ inResponseTo: REQUEST_ID }), {}, both)).resolves.toBeTruthy();
    await expect(validate(idp.response({ inResponseTo: REQUEST_ID, signing: { key: rotated } }), {}, both)).resolves.toBeTruthy();
    await expect(
      validate(idp.response({ inResponseTo: REQUEST_ID, signing: { key: rotated, omitKeyInfo: true } }), {}, both),
    ).resolves.toBeTruthy();
    expect(await refusal(validate(idp.response({ inResponseTo: REQUEST_ID, signing: { key: stranger } }), {}, both))).toBe('saml.signature');
    expect(await refusal(validate(idp.response({ inResponseTo: REQUEST_ID, signing: { key: rotated } })))).toBe('saml.signature');
  });

  test('a configuration with no certificate, three, or an unreadable one is refused', () => {
    const withCerts = (certificates: string[]) => () =>
      createSamlServiceProvider(settings({ idp: { entityId: idp.entityId, ssoUrl: idp.ssoUrl, certificates } }));
    for (const certificates of [[], [idp.keys.certificatePem, rotated.certificatePem, stranger.certificatePem], ['not a certificate'], ['QUFBQQ==']]) {
      expect(withCerts(certificates)).toThrow(expect.objectContaining({ code: 'sso.invalidConfiguration' }));
    }
  });
});

describe('IdP metadata', () => {
  test('samlify IdP metadata yields the entity id, both SSO URLs and the signing certificate', () => {
    expect(parseIdpMetadata(idp.metadata())).toEqual({
      entityId: idp.entityId,
      ssoUrls: { redirect: idp.ssoUrl, post: idp.ssoUrl },
      certificates: [idp.keys.certificateBase64],
    });
  });

  const descriptor = (keys: string) =>
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example/x">` +
    `<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">${keys}` +
    `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>` +
    `</md:IDPSSODescriptor></md:EntityDescriptor>`;
  const key = (use: string | null, cert: string) =>
    `<md:KeyDescriptor${use ? ` use="${use}"` : ''}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`;

  test('a KeyDescriptor without use counts as signing; two signing certificates are both kept', () => {
    const parsed = parseIdpMetadata(descriptor(key(null, idp.keys.certificateBase64) + key('signing', rotated.certificateBase64)));
    expect(parsed).toEqual({
      entityId: 'https://idp.example/x',
      ssoUrls: { redirect: 'https://idp.example/sso' },
      certificates: [idp.keys.certificateBase64, rotated.certificateBase64],
    });
  });

  test.each([
    ['malformed XML', '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"'],
    ['a DOCTYPE', `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>${''}`],
    ['no signing certificate', ''],
    ['an unreadable certificate', 'bad'],
    ['no IDPSSODescriptor', '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>'],
  ])('metadata with %s is refused', (what, input) => {
    let xml = input;
    if (what === 'a DOCTYPE') xml = input + descriptor(key('signing', idp.keys.certificateBase64));
    if (what === 'no signing certificate') xml = descriptor(key('encryption', idp.keys.certificateBase64));
    if (what === 'an unreadable certificate') xml = descriptor(key('signing', '!!not base64!!'));
    expect(() => parseIdpMetadata(xml)).toThrow(expect.objectContaining({ code: 'sso.invalidConfiguration' }));
  });
});

describe('the schema validator', () => {
  test('validates against the SAML XSDs, repeatedly, without adding process listeners', async () => {
    const xml = signedXml();
    const listeners = process.listenerCount('exit') + process.listenerCount('uncaughtException');
    for (let i = 0; i < 200; i++) await expect(validateSamlSchema(xml)).resolves.toBe(true);
    await expect(validateSamlSchema(xml.replace('<samlp:Status>', '<samlp:Nope/><samlp:Status>'))).rejects.toThrow(/XSD/);
    expect(process.listenerCount('exit') + process.listenerCount('uncaughtException')).toBe(listeners);
  });
});
