/**
 * A tiny authoritative DNS responder for tests (UDP on a loopback port): A queries for the names
 * it was given answer 127.0.0.1, so an ACME server pointed at it (pebble's `-dnsserver`)
 * validates challenges against servers on this machine. Other types for those names answer
 * with no records (so AAAA falls back to IPv4); any other name is NXDOMAIN.
 * It answers from the test's own event loop: a test that blocks it (spawnSync, execSync) while
 * the CA validates sees urn:ietf:params:acme:error:connection with a DNS "i/o timeout".
 */
import { type Socket, createSocket } from "node:dgram";

export interface TestDns {
  /** `127.0.0.1:<port>`, as pebble's `-dnsserver` takes it. */
  readonly address: string;
  readonly port: number;
  /** Names answered from now on (case-insensitive, no trailing dot). */
  add(name: string): void;
  /** Every question seen, as `<TYPE> <name>`, for a failing test's message. */
  queries(): string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const HEADER_BYTES = 12;

export async function startTestDns(names: string[] = []): Promise<TestDns> {
  const known = new Set(names.map(normalize));
  const seen: string[] = [];
  const socket: Socket = createSocket("udp4");
  socket.on("message", (query, peer) => {
    const reply = answer(query, known, seen);
    if (reply) socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve();
    });
  });
  const port = socket.address().port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    add: (name) => known.add(normalize(name)),
    queries: () => [...seen],
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** The reply to one query packet, or null for a packet that is not a single question. */
function answer(query: Buffer, known: Set<string>, seen: string[]): Buffer | null {
  if (query.length < HEADER_BYTES || query.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let offset = HEADER_BYTES;
  for (;;) {
    const length = query[offset];
    if (length === undefined || length > 63) return null;
    offset += 1;
    if (length === 0) break;
    labels.push(query.toString("latin1", offset, offset + length));
    offset += length;
  }
  if (offset + 4 > query.length) return null;
  const type = query.readUInt16BE(offset);
  const questionEnd = offset + 4;
  const name = normalize(labels.join("."));
  seen.push(`${type === TYPE_A ? "A" : type === TYPE_AAAA ? "AAAA" : `TYPE${type}`} ${name}`);

  const isKnown = known.has(name);
  const records = isKnown && type === TYPE_A ? [Buffer.from([127, 0, 0, 1])] : [];
  const header = Buffer.alloc(HEADER_BYTES);
  query.copy(header, 0, 0, 2); // the query's id
  // QR + AA, RD copied from the query; RCODE 3 (NXDOMAIN) for a name this responder does not hold.
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (isKnown ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const answers = records.map((rdata) => {
    const record = Buffer.alloc(12 + rdata.length);
    record.writeUInt16BE(0xc000 | HEADER_BYTES, 0); // name: a pointer to the question's
    record.writeUInt16BE(type, 2);
    record.writeUInt16BE(1, 4); // class IN
    record.writeUInt32BE(5, 6); // TTL, seconds
    record.writeUInt16BE(rdata.length, 10);
    rdata.copy(record, 12);
    return record;
  });
  return Buffer.concat([header, query.subarray(HEADER_BYTES, questionEnd), ...answers]);
}

function normalize(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}
