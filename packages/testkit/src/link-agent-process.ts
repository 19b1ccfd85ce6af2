/**
 * An agent link in a process of its own (as on a guest; the terminal benchmark's agent side):
 * the agent's real ControllerLink and AgentStreams (real node-pty) around a fake core, dialing
 * the controller with a bootstrap token. Prints "connected" once welcomed; SIGTERM stops it.
 *
 *   node --import tsx link-agent-process.ts <controller url> <bootstrap token>
 */
import { AgentStreams } from "@nbfleet/agent";
import { removeMadeDataDirs } from "./data-dir.js";
import { FakeCore } from "./fake-core.js";
import { startLink } from "./link-harness.js";
import { testShellTarget } from "./shell-target.js";

const [url, bootstrapToken] = process.argv.slice(2);
if (!url || !bootstrapToken)
  throw new Error("usage: link-agent-process.ts <controller url> <bootstrap token>");
const shellTarget = testShellTarget();
const streams = new AgentStreams({ target: () => shellTarget, logFile: () => "/dev/null" });
const link = startLink({
  url,
  core: new FakeCore(),
  bootstrapToken,
  streams,
  timing: { pingIntervalMs: 15_000 },
});
await link.waitForStatus((s) => s.state === "connected", "connected", { timeoutMs: 30_000 });
console.log("connected");
process.once(
  "SIGTERM",
  () =>
    void link.stop().then(() => {
      removeMadeDataDirs();
      process.exit(0);
    }),
);
