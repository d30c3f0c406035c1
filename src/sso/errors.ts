/**
 * Why a sign-in was refused. The code is stable (it names the check that failed, for logs, tests
 * and the problem type); the message is one sentence a person can act on and never echoes
 * attacker-controlled input verbatim beyond a short, sanitised excerpt.
 */
export type SsoErrorCode =
  // configuration and routing
  | 'sso.notConfigured'
  | 'sso.disabled'
  | 'sso.idpUnavailable'
  | 'sso.invalidConfiguration'
  // transaction (state / RelayState / cookie)
  | 'sso.transactionUnknown'
  | 'sso.transactionExpired'
  | 'sso.transactionUsed'
  | 'sso.browserMismatch'
  | 'sso.returnUrlNotAllowed'
  // OIDC
  | 'oidc.stateMismatch'
  | 'oidc.nonceMismatch'
  | 'oidc.idpError'
  | 'oidc.tokenInvalid'
  | 'oidc.userinfoMismatch'
  | 'oidc.subjectMissing'
  // SAML
  | 'saml.malformed'
  | 'saml.doctype'
  | 'saml.schema'
  | 'saml.status'
  | 'saml.signature'
  | 'saml.unsignedAssertion'
  | 'saml.weakAlgorithm'
  | 'saml.issuer'
  | 'saml.audience'
  | 'saml.recipient'
  | 'saml.destination'
  | 'saml.inResponseTo'
  | 'saml.unsolicited'
  | 'saml.assertionCount'
  | 'saml.expired'
  | 'saml.notYetValid'
  | 'saml.replay'
  | 'saml.subjectMissing'
  // membership
  | 'sso.memberRevoked'
  | 'sso.notMember'
  | 'sso.noSeat'
  | 'sso.emailMissing'
  | 'sso.refused';

export class SsoError extends Error {
  override readonly name = 'SsoError';
  constructor(
    readonly code: SsoErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
