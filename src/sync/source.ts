/**
 * What a directory connector gives the reconcile engine, and nothing more: a read-only snapshot of
 * the directory's users and groups, keyed by stable external ids. Connectors (`connectors/`)
 * implement `DirectorySource` with ldapts; this folder never imports them (the composition root
 * hands the sync a `SourceFactory`).
 *
 * A read either returns the whole directory or throws: a failed, timed-out, size-limited or
 * otherwise partial read must never look like "these people left" (directory-notes.md).
 */

/** A person as the directory has them. */
export interface DirectoryUser {
  /** Stable across renames and OU moves: `entryUUID` (OpenLDAP) or `objectGUID` as a GUID string (AD). */
  externalId: string;
  /** The entry's DN, normalised (RDNs parsed, case folded): for messages, and matching group members. */
  dn: string;
  /** Trimmed and lower-cased; null when the entry has none (reported, never invited). */
  email: string | null;
  /** The display name, when the directory has one. */
  name: string | null;
  /** AD: userAccountControl bit 0x2; LDAP: the configured disabled rule. */
  disabled: boolean;
}

/** A group as the directory has it: its direct members, users and groups, by external id. */
export interface DirectoryGroup {
  externalId: string;
  dn: string;
  name: string;
  /** Users that are direct members (member/uniqueMember DNs or memberUid uids, resolved to users read). */
  memberExternalIds: string[];
  /** Groups that are direct members (nested groups; cycles are legal and flattened by src/sync). */
  groupExternalIds: string[];
}

export interface DirectorySnapshot {
  users: DirectoryUser[];
  /** Empty when the configuration reads no groups. */
  groups: DirectoryGroup[];
  /**
   * Problems of single entries that did not stop the read (e.g. a member DN that names no entry
   * read, an entry without the external-id attribute): reported in the run, never fatal.
   */
  warnings: string[];
}

export interface ReadProgress {
  users: number;
  groups: number;
}

export interface DirectorySource {
  /**
   * Reads every user and group the configuration selects, page by page. Throws `DirectoryReadError`
   * on any failure (bind, TLS, time or size limit, a connection lost mid-read): never a partial result.
   */
  read(options?: { onProgress?: (progress: ReadProgress) => void; signal?: AbortSignal }): Promise<DirectorySnapshot>;
  /** Unbinds and closes the connection; safe to call twice. */
  close(): Promise<void>;
}

/** Why a directory could not be read, in words an administrator can act on. */
export type DirectoryReadFailure =
  | 'connect' // the server could not be reached (refused, DNS, timeout)
  | 'tls' // the TLS handshake failed (unknown CA, name mismatch, StartTLS refused)
  | 'bind' // the bind DN or password was refused
  | 'search' // a search failed: bad base DN or filter, no such object, insufficient access
  | 'limit' // a server time or size limit cut the result short
  | 'interrupted'; // the connection was lost mid-read, or the read was aborted

export class DirectoryReadError extends Error {
  constructor(
    readonly failure: DirectoryReadFailure,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
    this.name = 'DirectoryReadError';
  }
}

/** Builds a source for one organization's connection settings (main.ts wires `connectors/`). */
export type SourceFactory = (settings: import('./settings.js').ConnectionSettings) => DirectorySource;
