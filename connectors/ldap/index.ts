/**
 * OpenLDAP, FreeIPA and generic LDAP: ids from `entryUUID` (or the preset's attribute), the
 * configured disabled rule, `member`, `uniqueMember` and `memberUid`. Read-only.
 */
import type { ConnectionSettings } from '../../src/sync/settings.js';
import type { DirectorySource } from '../../src/sync/source.js';
import { createLdaptsSource } from '../shared/source.js';

export function createLdapSource(settings: ConnectionSettings): DirectorySource {
  return createLdaptsSource(settings, { rangeRetrieval: false });
}
