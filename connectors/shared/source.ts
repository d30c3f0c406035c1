/** A `DirectorySource` over ldapts: a fresh bound connection per read, closed when it ends. */
import type { Client } from 'ldapts';
import type { ConnectionSettings } from '../../src/sync/settings.js';
import type { DirectorySource } from '../../src/sync/source.js';
import { closeQuietly, openBoundClient } from './connection.js';
import { readSnapshot, type Dialect } from './read.js';

export function createLdaptsSource(settings: ConnectionSettings, dialect: Dialect): DirectorySource {
  const open = new Set<Client>();
  return {
    async read(options = {}) {
      const client = await openBoundClient(settings);
      open.add(client);
      const sides: Client[] = [];
      try {
        return await readSnapshot({
          client,
          settings,
          dialect,
          options,
          openClient: async () => {
            const side = await openBoundClient(settings);
            open.add(side);
            sides.push(side);
            return side;
          },
        });
      } finally {
        open.delete(client);
        for (const side of sides) open.delete(side);
        await closeQuietly(client);
      }
    },
    async close() {
      const clients = [...open];
      open.clear();
      await Promise.all(clients.map(closeQuietly));
    },
  };
}
