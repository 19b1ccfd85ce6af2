/** Wire protocol version "MAJOR.MINOR": a peer with another MAJOR is refused. */
export const PROTOCOL_VERSION = "1.1";
export const PROTOCOL_MAJOR = 1;
export const AGENT_VERSION = "0.1.0";

export function protocolMajor(version: string): number | undefined {
  const match = /^(\d+)\.(\d+)$/.exec(version);
  return match ? Number(match[1]) : undefined;
}
