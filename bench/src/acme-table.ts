/** The README table's rows of the `acme` part (acme-bench.ts). */
import type { AcmeBenchResult } from "./acme-bench.js";
import type { Spread } from "./stats.js";

/** figure | measured | goal | notes */
type Row = [string, string, string, string];

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const seconds = (s: Spread) =>
  `${fmt(s.median / 1000, 2)} s median (${fmt(s.min / 1000, 2)}–${fmt(s.max / 1000, 2)} s, p90 ${fmt(s.p90 / 1000, 2)} s)`;

export function acmeRows(r: AcmeBenchResult): Row[] {
  const each = (pick: (x: AcmeBenchResult["rounds"][number]) => number) =>
    r.rounds.map((x) => fmt(pick(x) / 1000, 2)).join(", ");
  const seen = r.rounds.filter((x) => x.selfSignedSeen).length;
  const odd = r.rounds.flatMap((x) => x.unverifiable);
  return [
    [
      "ACME machine: notebook answering over its self-signed certificate until it serves the CA's (pebble on loopback)",
      seconds(r.selfSignedToAcme),
      "—",
      `${r.rounds.length} machines created one after another through \`nbfleet server\` (local provider: real bootstrap, bundled agent, Debian's Jupyter) with POST /v1/vms certificate {mode: acme, hostname}, each deleted before the next; Debian's pebble as NBFLEET_ACME_DIRECTORY, HTTP-01 validated for real against the agent's answer (pebble's test DNS answering 127.0.0.1, PEBBLE_VA_NOSLEEP), ${fmt(r.lifetimeDays, 0)}-day certificates. The notebook's port probed every ${r.probeIntervalMs} ms with GET /api: from its first 200 to the first 200 over a chain that verifies against pebble's root alone for the machine's name (s: ${each((x) => x.selfSignedToAcmeMs)}); ${seen} of ${r.rounds.length} answered over the self-signed certificate first — 0 s means the agent's first issuance (a child process: account, order, HTTP-01, finalize, download) and the restart onto the new pair ended before Jupyter first answered, so nobody could have seen the self-signed certificate. Longest interval between two answered probes (a probe takes tens of ms; a restart shows as more) between the first answer and the ACME chain ${seconds(r.longestGap)}; after the ACME chain was first served, until the API showed it with no failing check and 5 s more, ${seconds(r.gapAfterAcme)} (a restart after it was already served: ${r.rounds.filter((x) => x.gapAfterAcmeMs > 1000).length} of ${r.rounds.length} rounds had a stretch over 1 s). Answers over a certificate neither self-signed nor verifying: ${odd.length}${odd.length ? ` (${[...new Set(odd)].join("; ")})` : ""}. Checked for each (the bench fails otherwise): no other ACME certificate and no self-signed one after the first ACME answer, the machine ends serving pebble's chain for its name, and GET /v1/vms/{name} shows issuer acme, a valid chain and the fingerprint served. POST /v1/vms until the notebook first answered ${seconds(r.createToFirstUp)}`,
    ],
    [
      "POST /v1/vms until the notebook answers: ACME machine over the CA's chain / self-signed machine",
      `${fmt(r.createToAcme.median / 1000, 2)} s / ${fmt(r.selfSignedCreateToFirstUp.median / 1000, 2)} s median`,
      "—",
      `the same ${r.rounds.length} ACME machines (first 200 over pebble's chain for the name; ${seconds(r.createToAcme)}) and, after each, a self-signed machine made the same way (first 200 over its self-signed certificate; ${seconds(r.selfSignedCreateToFirstUp)}), probed every ${r.probeIntervalMs} ms from the moment the provider named the port: what asking the CA adds to a machine's creation`,
    ],
  ];
}
