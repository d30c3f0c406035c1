/** Licenses for self-hosted clients: issuer keys, signing, and offline verification. */
export { installationIdSchema, LICENSE_ALGORITHM, LICENSE_TYPE, licenseClaimsSchema, type LicenseClaims } from './claims.js';
export {
  currentSigningKey,
  exportIssuerPrivateKey,
  generateIssuerKey,
  importIssuerKey,
  IssuerKeyInvalid,
  keysToPublish,
  publicJwks,
  type IssuerKey,
  type PublishedKey,
} from './keys.js';
export { licenseInputSchema, signLicense, type LicenseInput } from './issue.js';
export {
  coversUsage,
  verifyLicense,
  type LicenseRejection,
  type LicenseUsage,
  type LicenseVerification,
  type VerifyLicenseOptions,
} from './verify.js';
export { JwksUnavailable, loadJwks, type LoadJwksOptions } from './load-jwks.js';
export { LICENSE_VERIFY_USAGE, runLicenseVerify, type LicenseCliIo } from './cli.js';
