/** The connectors, picked by `settings.kind`; main.ts hands `createDirectorySource` to src/sync. */
import type { SourceFactory } from '../src/sync/source.js';
import { createActiveDirectorySource } from './active-directory/index.js';
import { createLdapSource } from './ldap/index.js';

export const createDirectorySource: SourceFactory = (settings) =>
  settings.kind === 'activeDirectory' ? createActiveDirectorySource(settings) : createLdapSource(settings);

export { createActiveDirectorySource, createLdapSource };
