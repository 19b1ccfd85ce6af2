#!/usr/bin/env node
import { installProcessPolicy } from "../process-policy.js";
/**
 * `nbfleet-agent`: the guest agent, usable on its own on one machine (see ./program.ts).
 * With a hidden first argument the same entry makes one certificate and exits: the long-lived
 * agent starts itself again that way, so it never loads the X.509 library.
 * Errors nobody caught follow ../process-policy.ts (an unhandled rejection never ends the agent).
 */
import {
  CERTIFICATE_CHILD_ARG,
  currentAgentCommand,
  runCertificateChild,
  setAgentCommand,
} from "../tls/certificate-child.js";

if (process.argv[2] === CERTIFICATE_CHILD_ARG) {
  await runCertificateChild();
} else {
  installProcessPolicy();
  setAgentCommand(currentAgentCommand());
  const { main } = await import("./program.js");
  await main(process.argv);
}
