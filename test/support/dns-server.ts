/**
 * A real authoritative DNS server on 127.0.0.1 for domain-verification tests, speaking the wire
 * format (dns-packet) over UDP and TCP on one random port, so `createTxtResolver(['127.0.0.1:<port>'])`
 * goes through node:dns (c-ares) exactly as production does with DNS_SERVERS.
 *
 * Answers as real servers do: NXDOMAIN for a name it does not know, NOERROR with no answers (NODATA)
 * for a known name without TXT records and for the names above a known one (RFC 8020 empty
 * non-terminals), and TXT values longer than 255 bytes split into character-strings
 * (RFC 1035 §3.3.14). A UDP answer larger than the client's buffer (512 bytes, RFC 1035 §4.2.1, or
 * its EDNS size, RFC 6891 §6.2.3) is sent truncated (TC) so the client retries over TCP (RFC 7766).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, as DNS_SERVERS takes it. */
  address: string;
  /**
   * Publishes the TXT records of `name` (replacing any): each record either one value (split into
   * 255-byte character-strings when longer) or its character-strings as given. `[]` makes the
   * name known with no TXT records.
   */
  setTxt(name: string, values: string[] | string[][]): void;
  /** Forgets `name`: it answers NXDOMAIN again. */
  remove(name: string): void;
  /** From now on answer every query with SERVFAIL, or not at all (`timeout`); `null` answers normally again. */
  fail(mode: 'servfail' | 'timeout' | null): void;
  /** Queries received so far, over UDP and TCP. */
  readonly queries: number;
  close(): Promise<void>;
}

const NOERROR = 0;
const SERVFAIL = 2;
const NXDOMAIN = 3;
const MAX_CHARACTER_STRING = 255;
const CLASSIC_UDP_SIZE = 512;

const canonical = (name: string) => name.trim().toLowerCase().replace(/\.$/, '');

/** One value as a record's character-strings: at most 255 bytes each, as zone files and servers split them. */
function splitValue(value: string): Buffer[] {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length === 0) return [Buffer.alloc(0)];
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += MAX_CHARACTER_STRING) parts.push(bytes.subarray(at, at + MAX_CHARACTER_STRING));
  return parts;
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const zone = new Map<string, Buffer[][]>();
  let failure: 'servfail' | 'timeout' | null = null;
  let queries = 0;

  const isKnown = (name: string) => {
    if (zone.has(name)) return true;
    for (const known of zone.keys()) if (known.endsWith(`.${name}`)) return true;
    return false;
  };

  /** The response to a query, or undefined when the server stays silent. */
  function answer(query: dnsPacket.DecodedPacket): dnsPacket.Packet | undefined {
    if (failure === 'timeout') return undefined;
    const base = {
      type: 'response' as const,
      id: query.id ?? 0,
      questions: query.questions ?? [],
      // AA, RA, and the client's RD echoed.
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0),
    };
    if (failure === 'servfail') return { ...base, flags: base.flags | SERVFAIL };
    const question = query.questions?.[0];
    if (!question) return { ...base, flags: base.flags | 1 /* FORMERR */ };
    const name = canonical(question.name);
    if (!isKnown(name)) return { ...base, flags: base.flags | NXDOMAIN };
    const records = question.type === 'TXT' ? (zone.get(name) ?? []) : [];
    return {
      ...base,
      flags: base.flags | NOERROR,
      answers: records.map((data) => ({ type: 'TXT' as const, class: 'IN' as const, name: question.name, ttl: 60, data })),
    };
  }

  function onUdp(udp: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): void {
    queries += 1;
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // Not DNS: a real server drops it.
    }
    const response = answer(query);
    if (!response) return;
    const opt = query.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const limit = Math.max(CLASSIC_UDP_SIZE, opt?.udpPayloadSize ?? CLASSIC_UDP_SIZE);
    let wire = dnsPacket.encode(response);
    if (wire.length > limit) {
      wire = dnsPacket.encode({ ...response, answers: [], flags: (response.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE });
    }
    udp.send(wire, remote.port, remote.address);
  }

  // TCP on the same port: messages framed by a two-byte length (RFC 1035 §4.2.2).
  const sockets = new Set<net.Socket>();
  function onTcp(socket: net.Socket): void {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const length = pending.readUInt16BE(0);
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        queries += 1;
        let query: dnsPacket.DecodedPacket;
        try {
          query = dnsPacket.decode(message);
        } catch {
          socket.destroy();
          return;
        }
        const response = answer(query);
        if (response) socket.write(dnsPacket.streamEncode(response));
      }
    });
  }

  const { udp, tcp, port } = await listenBoth(onUdp, onTcp);

  return {
    address: `127.0.0.1:${port}`,
    setTxt(name, values) {
      const records = (values as (string | string[])[]).map((value) =>
        typeof value === 'string' ? splitValue(value) : value.map((part) => Buffer.from(part, 'utf8')),
      );
      for (const record of records) {
        for (const part of record) {
          if (part.length > MAX_CHARACTER_STRING) throw new Error(`a character-string holds at most 255 bytes (${name})`);
        }
      }
      zone.set(canonical(name), records);
    },
    remove(name) {
      zone.delete(canonical(name));
    },
    fail(mode) {
      failure = mode;
    },
    get queries() {
      return queries;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

/** A UDP socket and a TCP server on one random port of 127.0.0.1 (retried if TCP finds the port taken). */
async function listenBoth(
  onUdp: (udp: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo) => void,
  onTcp: (socket: net.Socket) => void,
): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 1; ; attempt += 1) {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (message, remote) => onUdp(udp, message, remote));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const port = udp.address().port;
    const tcp = net.createServer(onTcp);
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      return { udp, tcp, port };
    } catch (error) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (attempt >= 5) throw error;
    }
  }
}
