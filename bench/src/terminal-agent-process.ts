/**
 * The agent side of the terminal benchmark, in a process of its own (as on a guest): the
 * agent's real ControllerLink and AgentStreams (real node-pty) around a fake core, dialing the
 * controller with a bootstrap token. Prints "connected" once welcomed; SIGTERM stops it.
 *
 *   node --import tsx terminal-agent-process.ts <controller url> <bootstrap token>
 */
import { AgentStreams } from "@nbfleet/agent";
import { FakeCore } from "@nbfleet/testkit/fake-core";
import { startLink } from "@nbfleet/testkit/link-harness";

const [url, bootstrapToken] = process.argv.slice(2);
if (!url || !bootstrapToken)
  throw new Error("usage: terminal-agent-process.ts <controller url> <bootstrap token>");
const streams = new AgentStreams({ target: () => ({ user: null }), logFile: () => "/dev/null" });
const link = startLink({
  url,
  core: new FakeCore(),
  bootstrapToken,
  streams,
  timing: { pingIntervalMs: 15_000 },
});
await link.waitForStatus((s) => s.state === "connected", "connected", { timeoutMs: 30_000 });
console.log("connected");
process.once("SIGTERM", () => void link.stop().then(() => process.exit(0)));
