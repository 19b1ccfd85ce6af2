/**
 * The public port → notebook port redirect the Linux bootstrap installs (systemd mode, Azure),
 * loaded by the real `nft` into a network namespace of its own (`unshare -rn`): connections from
 * the machine itself to its own addresses on 443 reach the notebook's port too, while outbound
 * connections to other hosts' 443 stay untouched.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { renderLinuxBootstrap } from "./linux.js";

const run = promisify(execFile);

/** NBF_NFT_RULES as the rendered script itself sets it (sh evaluates the settings block). */
async function renderedRules(publicPort: number, notebookPort: number): Promise<string> {
  const script = renderLinuxBootstrap({
    mode: "systemd",
    controllerUrl: "https://controller.example",
    artifactUrl: "https://controller.example/v1/agent/artifact",
    artifactSha256: "a".repeat(64),
    bootstrapToken: "bootstrap-token-0123456789",
    dataDir: "/var/lib/nbfleet/agent",
    installDir: "/opt/nbfleet",
    notebookPort,
    publicPort,
    bindIp: "0.0.0.0",
  });
  const block = script.slice(script.search(/^NBF_MODE=/m), script.search(/^NBF_CHANGED=0$/m));
  const { stdout } = await run("sh", ["-c", `${block}\nprintf '%s' "$NBF_NFT_RULES"`]);
  return stdout;
}

async function need(tool: string, debianPackage: string): Promise<void> {
  await run("sh", ["-c", `command -v ${tool}`]).catch(() => {
    throw new Error(
      `this test needs \`${tool}\` (Debian package ${debianPackage}): apt-get install ${debianPackage}`,
    );
  });
}

/** In a fresh network namespace: load the rules, serve the notebook port, probe port 443 at three addresses. */
const NAMESPACE_SCRIPT = `
set -e
ip link set lo up
ip addr add 10.77.0.2/32 dev lo          # another address of this machine
ip route add 10.88.0.0/24 dev lo         # a route to hosts that are not this machine
nft -f "$1"
"$2" -e 'require("net").createServer((s) => s.end("notebook")).listen(Number(process.argv[1]), "0.0.0.0")' "$3" &
server=$!
trap 'kill $server' EXIT
sleep 0.5
for address in 127.0.0.1 10.77.0.2 10.88.0.9; do
  "$2" -e '
    const [host, port] = process.argv.slice(1);
    const s = require("net").connect({ host, port: Number(port) });
    let data = "";
    const done = (what) => { console.log(host + " " + what); process.exit(0); };
    s.setTimeout(1000, () => done("timeout"));
    s.on("data", (chunk) => { data += chunk; });
    s.on("end", () => done(data));
    s.on("error", (e) => done(e.code));
  ' "$address" "$4"
done
`;

describe("the public port redirect (nftables)", () => {
  it("carries a prerouting and an output chain, both to the notebook port", async () => {
    const rules = await renderedRules(443, 9999);
    expect(rules).toMatch(
      /chain prerouting \{\s*type nat hook prerouting priority -100; policy accept;\s*tcp dport 443 redirect to :9999\s*\}/,
    );
    expect(rules).toMatch(
      /chain output \{\s*type nat hook output priority -100; policy accept;\s*fib daddr type local tcp dport 443 redirect to :9999\s*\}/,
    );
  });

  it("lets the machine itself reach the notebook on the public port, and leaves outbound 443 alone", async () => {
    await need("nft", "nftables");
    await need("unshare", "util-linux");
    const dir = makeDataDir("nbf-nft-", 0o700);
    const rulesFile = path.join(dir, "redirect.nft");
    await writeFile(rulesFile, await renderedRules(8443, 18999));
    await writeFile(path.join(dir, "probe.sh"), NAMESPACE_SCRIPT);
    const { stdout } = await run(
      "unshare",
      ["-rn", "sh", path.join(dir, "probe.sh"), rulesFile, process.execPath, "18999", "8443"],
      { timeout: 20_000 },
    );
    const answers = Object.fromEntries(
      stdout
        .trim()
        .split("\n")
        .map((line) => line.split(" ") as [string, string]),
    );
    expect(answers["127.0.0.1"]).toBe("notebook");
    expect(answers["10.77.0.2"]).toBe("notebook");
    // Another host's HTTPS is not turned into this machine's notebook.
    expect(answers["10.88.0.9"]).not.toBe("notebook");
  });
});
