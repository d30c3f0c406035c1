/**
 * Active Directory (and Samba AD): `objectGUID` as a GUID string, userAccountControl bit 0x2 via
 * the preset's disabled filter, `member` with range retrieval for groups over 1500 members.
 * Read-only. The primary group (`primaryGroupID`) is in neither `member` nor `memberOf` and is not read.
 */
import type { ConnectionSettings } from '../../src/sync/settings.js';
import type { DirectorySource } from '../../src/sync/source.js';
import { createLdaptsSource } from '../shared/source.js';

export function createActiveDirectorySource(settings: ConnectionSettings): DirectorySource {
  return createLdaptsSource(settings, { rangeRetrieval: true });
}
