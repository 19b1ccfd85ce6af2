/**
 * The run's one Chromium, as a process of its own so that it outlives the test file that needed
 * it first: launches Debian's Chromium as a Playwright browser server, writes its WebSocket
 * endpoint to `<dir>/endpoint`, and closes it when asked (SIGTERM) or when the test run that
 * started it (`--owner <pid>`) is gone.
 *
 *   browser-server-process.ts --dir <dir> --owner <pid>
 */
import { rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./chromium.js";

const { values } = parseArgs({ options: { dir: { type: "string" }, owner: { type: "string" } } });
if (!values.dir || !values.owner) throw new Error("browser-server-process: --dir and --owner are required");
const dir = values.dir;
const owner = Number(values.owner);

const server = await chromium.launchServer({
  executablePath: CHROMIUM_PATH,
  args: CHROMIUM_ARGS,
  timeout: 60_000,
  handleSIGINT: false,
  handleSIGTERM: false,
});
const tmp = path.join(dir, `endpoint.${process.pid}`);
await writeFile(tmp, server.wsEndpoint());
await rename(tmp, path.join(dir, "endpoint"));

let closing = false;
const close = async () => {
  if (closing) return;
  closing = true;
  await server.close().catch(() => undefined);
  process.exit(0);
};
process.on("SIGTERM", close);
process.on("SIGINT", close);
setInterval(() => {
  try {
    process.kill(owner, 0);
  } catch {
    void close();
  }
}, 2_000);
