/**
 * The run's one pebble, as a process of its own so that it outlives the test file that needed it
 * first (and so its test DNS answers from an event loop no test blocks): starts pebble with its
 * DNS responder (pebble.ts), serves a small control endpoint on loopback (add a DNS name, fetch
 * the issuing root, read pebble's log), writes what a test needs to `<dir>/pebble.json`, and
 * removes it all when asked (SIGTERM) or when the test run that started it (`--owner <pid>`)
 * is gone.
 *
 *   pebble-server-process.ts --dir <dir> --owner <pid>
 */
import { type IncomingMessage, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { DNS_NAME_PATTERN } from "@nbfleet/shared";
import { startPebble } from "./pebble.js";
import { publishEndpoint, serveUntilOwnerGone } from "./run-shared-server.js";
import type { SharedPebbleEndpoint } from "./shared-pebble.js";

const { values } = parseArgs({ options: { dir: { type: "string" }, owner: { type: "string" } } });
if (!values.dir || !values.owner) throw new Error("pebble-server-process: --dir and --owner are required");
const dir = values.dir;
const owner = Number(values.owner);

const DNS_NAME = new RegExp(DNS_NAME_PATTERN);
const pebble = await startPebble();

const body = async (request: IncomingMessage): Promise<string> => {
  let text = "";
  for await (const chunk of request) text += chunk;
  return text;
};

const control = createServer((request, response) => {
  const answer = (status: number, text: string) => {
    response.writeHead(status, { "content-type": "text/plain" }).end(text);
  };
  const route = `${request.method} ${request.url}`;
  if (route === "POST /dns") {
    void body(request).then((name) => {
      if (!DNS_NAME.test(name)) return answer(400, `not a DNS name: ${JSON.stringify(name)}`);
      pebble.dns.add(name);
      answer(204, "");
    });
  } else if (route === "GET /root") {
    pebble.rootPem().then(
      (pem) => answer(200, pem),
      (error: Error) => answer(502, error.message),
    );
  } else if (route === "GET /log") {
    answer(200, pebble.log());
  } else if (route === "GET /dns/queries") {
    answer(200, pebble.dns.queries().join("\n"));
  } else {
    answer(404, `no ${route} here`);
  }
});
await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));

const endpoint: SharedPebbleEndpoint = {
  directoryUrl: pebble.directoryUrl,
  caPem: pebble.caPem,
  caFile: pebble.caFile,
  httpPort: pebble.httpPort,
  tlsPort: pebble.tlsPort,
  dnsAddress: pebble.dns.address,
  controlUrl: `http://127.0.0.1:${(control.address() as AddressInfo).port}`,
};
await publishEndpoint(dir, "pebble.json", JSON.stringify(endpoint));
serveUntilOwnerGone(owner, async () => {
  control.close();
  await pebble.remove();
});
