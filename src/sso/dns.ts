/**
 * TXT lookups for domain verification. With DNS_SERVERS (e.g. `127.0.0.1:5353`) the lookups go to
 * those resolvers only, else to the system's. Short timeouts: an admin waits on the answer.
 */
import { Resolver } from 'node:dns/promises';

export function createTxtResolver(servers: string[]): (name: string) => Promise<string[][]> {
  const resolver = new Resolver({ timeout: 2_000, tries: 2 });
  if (servers.length > 0) resolver.setServers(servers);
  return (name) => resolver.resolveTxt(name);
}
