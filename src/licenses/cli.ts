/**
 * `portico license verify <file> --jwks <file|url> --installation <id>`: the offline check a
 * self-hosted instance (or its operator) runs. Exit 0 valid and covering the given usage, 1 invalid
 * or not covering it, 2 when no verdict could be reached (usage error, unreadable file or JWKS).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { installationIdSchema } from './claims.js';
import { JwksUnavailable, loadJwks } from './load-jwks.js';
import { coversUsage, verifyLicense } from './verify.js';

export interface LicenseCliIo {
  stdout(line: string): void;
  stderr(line: string): void;
  readFile?: ((path: string) => Promise<string>) | undefined;
  fetch?: typeof fetch | undefined;
  now?: (() => Date) | undefined;
}

export const LICENSE_VERIFY_USAGE = `Usage: portico license verify <license-file> --jwks <file|https-url> --installation <id>
         [--organization <id>] [--issuer <url>] [--seats-in-use <n>] [--features <a,b,...>]
         [--clock-tolerance <seconds>]

Verifies a license offline against the issuer's public keys (GET /api/v1/license-keys).
The license file holds the token, or the JSON the license download returned.
Exit status: 0 valid (and covering the usage given), 1 invalid or not covering it, 2 usage error.`;

/** Runs `license verify` with the arguments after those two words; resolves to the exit code. */
export async function runLicenseVerify(argv: readonly string[], io: LicenseCliIo): Promise<0 | 1 | 2> {
  const usageError = (message: string): 2 => {
    io.stderr(`error: ${message}`);
    io.stderr(LICENSE_VERIFY_USAGE);
    return 2;
  };

  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        jwks: { type: 'string' },
        installation: { type: 'string' },
        organization: { type: 'string' },
        issuer: { type: 'string' },
        'seats-in-use': { type: 'string' },
        features: { type: 'string' },
        'clock-tolerance': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(LICENSE_VERIFY_USAGE);
    return 0;
  }
  if (positionals.length !== 1) return usageError('give exactly one license file');
  if (!values.jwks) return usageError('--jwks is required');
  if (!values.installation) return usageError('--installation is required');
  if (!installationIdSchema.safeParse(values.installation).success) {
    return usageError('--installation must be printable ASCII without spaces, at most 200 characters');
  }
  const seatsInUse = optionalCount(values['seats-in-use']);
  if (seatsInUse === null) return usageError('--seats-in-use must be a whole number');
  const clockTolerance = optionalCount(values['clock-tolerance']);
  if (clockTolerance === null) return usageError('--clock-tolerance must be a whole number of seconds');
  const featuresUsed =
    values.features === undefined
      ? undefined
      : values.features
          .split(',')
          .map((feature) => feature.trim())
          .filter(Boolean);

  const file = positionals[0]!;
  let token: string;
  try {
    token = tokenOf(await (io.readFile ?? ((path: string) => readFile(path, 'utf8')))(file));
  } catch (error) {
    return usageError(`cannot read the license from ${file}: ${error instanceof Error ? error.message : error}`);
  }
  let jwks;
  try {
    jwks = await loadJwks(values.jwks, { fetch: io.fetch, readFile: io.readFile });
  } catch (error) {
    if (error instanceof JwksUnavailable) return usageError(error.message);
    throw error;
  }

  const result = await verifyLicense(token, {
    jwks,
    installationId: values.installation,
    organizationId: values.organization,
    issuer: values.issuer,
    now: io.now?.(),
    clockToleranceSeconds: clockTolerance,
  });
  if (!result.valid) {
    io.stdout(`invalid: ${result.reason}`);
    return 1;
  }
  const { license } = result;
  io.stdout('valid');
  io.stdout(`  issuer:       ${license.iss}`);
  io.stdout(`  organization: ${license.sub}`);
  io.stdout(`  installation: ${license.installationId}`);
  io.stdout(`  plan:         ${license.plan}`);
  io.stdout(`  seats:        ${license.seats}`);
  io.stdout(`  features:     ${license.features.join(', ') || '(none)'}`);
  io.stdout(`  expires:      ${new Date(license.exp * 1000).toISOString()}`);
  if (seatsInUse === undefined && featuresUsed === undefined) return 0;

  const coverage = coversUsage(license, { seatsInUse, featuresUsed });
  if (coverage.covered) {
    io.stdout('covered');
    return 0;
  }
  io.stdout(`not covered: ${coverage.problems.join('; ')}`);
  return 1;
}

/** Undefined when absent, null when not a whole number. */
function optionalCount(value: string | undefined): number | undefined | null {
  if (value === undefined) return undefined;
  return /^\d{1,9}$/.test(value.trim()) ? Number(value.trim()) : null;
}

/** The file holds the bare token, or the download's JSON body `{license, expiresAt}`. */
function tokenOf(text: string): string {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return trimmed;
  const body: unknown = JSON.parse(trimmed);
  if (body && typeof body === 'object' && 'license' in body && typeof body.license === 'string') return body.license;
  throw new Error('the JSON has no "license" string');
}
