/**
 * `pnpm azure-emulator --port PORT --data-dir DIR`: runs the emulator in the foreground and
 * prints one JSON line `{"endpoint", "caFile", "port", "inventory"}` on stdout once it listens;
 * its log goes to stderr. Ctrl-C halts every guest it booted and exits.
 */
import { parseArgs } from "node:util";
import { startEmulator } from "./server.js";

const USAGE = `usage: pnpm azure-emulator --data-dir DIR [--port PORT] [--host 127.0.0.1] [--guests sandbox|none]
                           [--token TOKEN] [--no-throttle] [--seed N] [--quiet]`;

const { values } = parseArgs({
  options: {
    "data-dir": { type: "string" },
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    guests: { type: "string", default: "sandbox" },
    token: { type: "string" },
    "no-throttle": { type: "boolean", default: false },
    seed: { type: "string" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const fail = (message: string): never => {
  console.error(`azure-emulator: ${message}\n${USAGE}`);
  process.exit(2);
};
const dataDir = values["data-dir"] ?? fail("--data-dir is required");
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0..65535, got ${values.port}`);
if (values.guests !== "sandbox" && values.guests !== "none")
  fail(`--guests must be sandbox or none, got ${values.guests}`);

const running = await startEmulator({
  dataDir,
  port,
  host: values.host,
  guests: values.guests as "sandbox" | "none",
  ...(values.token ? { token: values.token } : {}),
  ...(values["no-throttle"] ? { limits: false as const } : {}),
  ...(values.seed ? { seed: Number(values.seed) } : {}),
  log: values.quiet
    ? () => {}
    : (message, fields) =>
        console.error(JSON.stringify({ time: new Date().toISOString(), msg: message, ...fields })),
});
console.log(
  JSON.stringify({
    endpoint: running.endpoint,
    caFile: running.caFile,
    port: running.port,
    inventory: `${running.endpoint}/_emulator/inventory`,
  }),
);

const stop = () => {
  running.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
