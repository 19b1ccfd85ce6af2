/**
 * The run's one Chromium, as a process of its own so that it outlives the test file that needed
 * it first: launches Debian's Chromium as a Playwright browser server, writes its WebSocket
 * endpoint to `<dir>/endpoint`, and closes it when asked (SIGTERM) or when the test run that
 * started it (`--owner <pid>`) is gone.
 *
 *   browser-server-process.ts --dir <dir> --owner <pid>
 */
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./chromium.js";
import { publishEndpoint, serveUntilOwnerGone } from "./run-shared-server.js";

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
await publishEndpoint(dir, "endpoint", server.wsEndpoint());
serveUntilOwnerGone(owner, () => server.close());
