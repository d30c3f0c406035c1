/**
 * What an ACS call costs: Portico's `validateResponse` next to samlify's own `parseLoginResponse`
 * on the same signed responses in the same run (goal: validateResponse p50 ≤ 20 ms). Each response
 * is signed twice (Assertion and Response, RSA-2048, SHA-256) by the test IdP, carries five
 * attributes, and is validated once per row, in sequence, after a warm-up. Also shown: the XSD
 * validator alone, and samlify with @authenio/samlify-xmllint-wasm (sso-notes' option) on a few.
 *
 * Usage: npm run bench:sso [-- --n=500]
 */
import { createRequire } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as samlify from 'samlify';
import { createSamlServiceProvider } from '../src/sso/saml.js';
import { samlSchemaValidator, validateSamlSchema } from '../src/sso/xsd.js';
import { createTestIdp, decode } from '../test/support/saml-idp.js';
import { benchArgs } from './support.js';

// Untyped CommonJS; only its `validate` is used.
const xmllintWasm = createRequire(import.meta.url)('@authenio/samlify-xmllint-wasm') as { validate: (xml: string) => Promise<unknown> };

const args = benchArgs();
const N = Number(args.n ?? 500);
const WARMUP = 20;
const XMLLINT_WASM_N = Math.min(N, 20);
const SP_ENTITY_ID = 'https://portico.bench/sso/saml/acme';
const ACS_URL = 'https://portico.bench/sso/saml/acme/acs';
const REQUEST_ID = '_bench-request';

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Samples {
  wall: number[];
  /** Mean CPU time a call (user + system, all threads): steadier than wall time on a busy machine. */
  cpu: number;
}

async function measure(responses: string[], once: (samlResponse: string) => Promise<unknown>): Promise<Samples> {
  for (const r of responses.slice(0, WARMUP)) await once(r);
  const wall: number[] = [];
  const cpuStart = process.cpuUsage();
  for (const r of responses) {
    const start = performance.now();
    await once(r);
    wall.push(performance.now() - start);
  }
  const cpu = process.cpuUsage(cpuStart);
  return { wall, cpu: (cpu.user + cpu.system) / 1000 / responses.length };
}

async function main() {
  const idp = await createTestIdp({ acsUrl: ACS_URL, spEntityId: SP_ENTITY_ID });
  const attributes = {
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress': ['ada@example.com'],
    'http://schemas.microsoft.com/identity/claims/displayname': ['Ada Lovelace'],
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname': ['Ada'],
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname': ['Lovelace'],
    'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups': ['engineering', 'admins', 'everyone'],
  };
  // Fresh IDs each, as a real IdP's; built before timing, signing is the IdP's cost, not ours.
  const responses = Array.from({ length: N }, () => idp.response({ inResponseTo: REQUEST_ID, attributes, sign: 'both' }));
  const bytes = Buffer.byteLength(decode(responses[0]!));

  const portico = createSamlServiceProvider({
    spEntityId: SP_ENTITY_ID,
    acsUrl: ACS_URL,
    idp: { entityId: idp.entityId, ssoUrl: idp.ssoUrl, certificates: [idp.keys.certificatePem] },
    binding: 'redirect',
    allowUnsolicited: false,
    wantAssertionsSigned: true,
    minSignatureAlgorithm: 'sha256',
    clockSkewSeconds: 120,
  });
  const sp = samlify.ServiceProvider({
    entityID: SP_ENTITY_ID,
    assertionConsumerService: [{ Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: ACS_URL }],
    wantAssertionsSigned: true,
  });
  const samlifyIdp = samlify.IdentityProvider({
    entityID: idp.entityId,
    signingCert: idp.keys.certificateBase64,
    singleSignOnService: [{ Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: idp.ssoUrl }],
  });

  const rows: { label: string; n: number; p50: number; p99: number; cpu: number }[] = [];
  const row = (label: string, samples: Samples) =>
    rows.push({ label, n: samples.wall.length, p50: percentile(samples.wall, 50), p99: percentile(samples.wall, 99), cpu: samples.cpu });

  row('samlify parseLoginResponse', await measure(responses, (r) => sp.parseLoginResponse(samlifyIdp, 'post', { body: { SAMLResponse: r } })));
  row('Portico validateResponse', await measure(responses, (r) => portico.validateResponse({ SAMLResponse: r }, { requestId: REQUEST_ID })));
  const xml = responses.map(decode);
  row('XSD validation alone (libxml2-wasm)', await measure(xml, validateSamlSchema));

  // The alternative validator is process-global too: swap it in for a few, then restore ours.
  samlify.setSchemaValidator(xmllintWasm);
  const few = responses.slice(0, XMLLINT_WASM_N);
  const quiet = console.error;
  console.error = () => {};
  try {
    row('samlify + samlify-xmllint-wasm', await measure(few, (r) => sp.parseLoginResponse(samlifyIdp, 'post', { body: { SAMLResponse: r } })));
  } finally {
    console.error = quiet;
    samlify.setSchemaValidator(samlSchemaValidator);
  }

  const base = rows[0]!;
  const ms = (v: number) => `${v.toFixed(2)} ms`.padStart(11);
  const ratio = (v: number, of: number) => `${(v / of).toFixed(2)}x`.padStart(9);
  console.log(`Node ${process.version}; responses of ${bytes} bytes, both signed (RSA-2048, SHA-256); ${WARMUP} warm-up calls each`);
  const [load1] = loadavg();
  console.log(`load average ${load1!.toFixed(2)} on ${availableParallelism()} cores: wall times stretch with it, CPU times much less`);
  console.log(`${'call'.padEnd(38)} ${'n'.padStart(5)} ${'p50'.padStart(11)} ${'p99'.padStart(11)} ${'CPU mean'.padStart(11)} ${'p50/base'.padStart(9)} ${'p99/base'.padStart(9)} ${'CPU/base'.padStart(9)}`);
  for (const r of rows) {
    console.log(
      `${r.label.padEnd(38)} ${String(r.n).padStart(5)} ${ms(r.p50)} ${ms(r.p99)} ${ms(r.cpu)} ${ratio(r.p50, base.p50)} ${ratio(r.p99, base.p99)} ${ratio(r.cpu, base.cpu)}`,
    );
  }
  console.log('base: samlify parseLoginResponse with the same (libxml2-wasm) schema validator');
  const goal = rows[1]!.p50 <= 20;
  console.log(`goal validateResponse p50 <= 20 ms: ${goal ? 'met' : 'NOT met'}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
