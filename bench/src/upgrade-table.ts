/** The README table's rows of the `upgrade` part (upgrade-bench.ts). */
import { type Spread, median } from "./stats.js";
import type { FleetRound, UpgradeBenchResult } from "./upgrade-bench.js";

/** figure | measured | goal | notes */
type Row = [string, string, string, string];

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const count = (n: number) => n.toLocaleString("en-US");
const seconds = (s: Spread) =>
  `${fmt(s.median / 1000, 2)} s median (${fmt(s.min / 1000, 2)}–${fmt(s.max / 1000, 2)} s, p90 ${fmt(s.p90 / 1000, 2)} s)`;
const ratio = (s: Spread) =>
  `${fmt(s.median, 2)}× median (${fmt(s.min, 2)}–${fmt(s.max, 2)}×, p90 ${fmt(s.p90, 2)}×)`;
const mb = (bytes: number) => `${fmt(bytes / 1024 / 1024, 2)} MB`;

export function upgradeRows(r: UpgradeBenchResult): Row[] {
  const { real } = r;
  const rows: Row[] = [];
  if (real)
    rows.push([
      "one agent upgraded: command until the new agent is connected and reporting healthy",
      seconds(real.ready),
      "≤ 3 s",
      `${real.rounds.length} upgrades one after another of one local sandbox (\`nbfleet server\` with the local provider: real bootstrap, bundled agent, Debian's Jupyter), each to a newer build of the checkout (${mb(real.artifactBytes)}) published to the controller: POST /v1/operations (agent.upgrade, that one machine) until GET /v1/vms/{name} shows the new version connected with no failing check (polled every 20 ms) — download, signature and sha256 checks, unpacking, the switch, the agent's exit and its launcher starting the new one, which re-adopts the notebook server, dials and reports; the operation's own end ${seconds(real.operation)}. The notebook server stayed one process through all of them (pid ${real.notebookPid}, same start time; checked every round, else the bench fails): its uptime at the end ${fmt(real.notebookUptimeSec, 0)} s, longer than the ${fmt(real.upgradingSec, 0)} s the upgrades took; creating the machine until it served took ${fmt(real.createMs / 1000, 1)} s`,
    ]);
  const f = r.fleet;
  if (!f) return rows;
  const mid = [...f.rounds].sort((x, y) => x.ratio - y.ratio)[Math.floor((f.rounds.length - 1) / 2)]!;
  const all = (pick: (x: FleetRound) => number, digits: number) =>
    f.rounds.map((x) => fmt(pick(x), digits)).join(", ");
  rows.push(
    [
      `${count(f.agents)} simulated agents upgraded ${f.concurrency} at a time (simulated restart ${f.restartMs} ms): total / ideal`,
      ratio(f.ratio),
      "≤ 1.3×",
      `${f.rounds.length} operations on one controller, each to a newer version: ${all((x) => x.ratio, 2)}×; POST /v1/operations (agent.upgrade, the whole fleet, maxConcurrency ${f.concurrency}) until its operation.finished event; ideal ${count(f.agents)} ÷ ${f.concurrency} × ${f.restartMs} ms = ${fmt(f.idealMs / 1000, 1)} s. Each agent (in a process of its own) downloads the artifact from the controller for real, checks bytes, sha256 and the release signature, answers, drops its link and dials again ${f.restartMs} ms later reporting the new version; checked every operation (the bench fails otherwise): all targets succeeded, every agent downloaded the whole artifact exactly once and came back on the new version, at most ${f.concurrency} upgrades under way at once on the agents' clocks, command received → the new version's first hello (peaks ${all((x) => x.peakConcurrency, 0)}; on the operation's own record ${all((x) => x.controllerPeakConcurrency, 0)}). The median operation: ${fmt(mid.totalMs / 1000, 1)} s (its own start→end ${fmt(mid.serverMs / 1000, 1)} s), command → download checked per agent median ${fmt(mid.download.median, 0)} ms (p90 ${fmt(mid.download.p90, 0)}, max ${fmt(mid.download.max, 0)}), the controller waited ${fmt(mid.controllerRunQueueWaitMs / 1000, 1)} s for a CPU (load average ${fmt(mid.loadAverage1m, 2)}); ${count(f.agents)} VMs seeded in ${fmt(f.seedMs / 1000, 1)} s, connected in ${fmt(f.connectMs / 1000, 1)} s`,
    ],
    [
      `artifact bytes served per fleet upgrade of ${count(f.agents)} / controller CPU per download`,
      `${mb(mid.bytesServed)} / ${fmt(median(f.rounds.map((x) => x.controllerCpuMsPerDownload)), 2)} ms median`,
      "—",
      `${count(f.agents)} × ${mb(f.artifactBytes)} from GET /v1/agent/artifacts/{version}/file, every byte received and hashed by the agents; CPU per download of each operation ${all((x) => x.controllerCpuMsPerDownload, 2)} ms = the controller's CPU (user + system) over the whole operation ÷ agents upgraded, so it includes each one's command, result and reconnection besides its download; the sim fleet used ${all((x) => x.fleetCpuMsPerAgent, 2)} ms per agent`,
    ],
  );
  return rows;
}
