/**
 * Opening a bound connection: ldap://, ldaps:// or StartTLS, verified against the customer's CA
 * (directory-notes.md, "TLS"). A new connection per read: AD drops idle connections after 15
 * minutes, and ldapts' reconnect would not redo StartTLS or the bind.
 */
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'ldapts';
import type { ConnectionSettings } from '../../src/sync/settings.js';
import { toReadError, type ReadPhase } from './errors.js';

/** How long to wait for a TCP (and TLS) connection. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Client-side slack over the server's time limit before a page counts as lost. */
const RESPONSE_SLACK_MS = 30_000;

export function tlsOptionsFor(settings: Pick<ConnectionSettings, 'url' | 'tls'>): ConnectionOptions {
  const host = hostOf(settings.url);
  return {
    host,
    // SNI and the certificate check use a name; for an IP address Node checks the IP SANs.
    ...(isIP(host) ? {} : { servername: host }),
    ...(settings.tls.ca ? { ca: [settings.tls.ca] } : {}),
    minVersion: 'TLSv1.2',
  };
}

export function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
}

/** A connected, bound client; throws `DirectoryReadError` ('connect', 'tls' or 'bind'). */
export async function openBoundClient(settings: ConnectionSettings): Promise<Client> {
  const tlsOptions = tlsOptionsFor(settings);
  const ldaps = settings.url.toLowerCase().startsWith('ldaps:');
  const client = new Client({
    url: settings.url,
    connectTimeout: CONNECT_TIMEOUT_MS,
    timeout: settings.timeLimitSeconds * 1000 + RESPONSE_SLACK_MS,
    // ldapts treats any tlsOptions as "connect with TLS", so ldap:// (and StartTLS) must not pass them here.
    ...(ldaps ? { tlsOptions } : {}),
  });
  let phase: ReadPhase = 'connect';
  try {
    if (settings.tls.startTls && !ldaps) {
      phase = 'tls';
      await client.startTLS({ ...tlsOptions });
    }
    phase = 'bind';
    await client.bind(settings.bindDn, settings.bindPassword);
    return client;
  } catch (error) {
    await closeQuietly(client);
    throw toReadError(error, { phase, url: settings.url, bindDn: settings.bindDn, bindPassword: settings.bindPassword });
  }
}

export async function closeQuietly(client: Client): Promise<void> {
  try {
    await client.unbind();
  } catch {
    // the connection is gone already: nothing to close
  }
}
