/** `nbfleet-agent certificate rotate|install|acme`: replace the notebook's certificate. */
import { readFile } from "node:fs/promises";
import { collect } from "@nbfleet/shared/cli-parse";
import type { Command } from "commander";
import { registerCertificateAcme } from "../../acme/cli.js";
import { dataPaths } from "../../config/paths.js";
import { isAgentRunning } from "../../control/client.js";
import { installCertificate } from "../../tls/ensure.js";
import { type DataDirOption, print, runCommand, withDataDir } from "../context.js";

export function registerCertificate(program: Command): void {
  const certificate = program
    .command("certificate")
    .description("rotate or install the notebook's certificate");

  withDataDir(certificate.command("rotate"))
    .description("make a new self-signed certificate on this machine and restart the server to serve it")
    .option("--hostname <name>", "extra DNS name (repeatable)", collect)
    .option("--cert-ip <addr>", "extra IP address (repeatable)", collect)
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { hostname?: string[]; certIp?: string[] }) =>
      runCommand(opts, "certificate.rotate", {
        ...(opts.hostname ? { hostnames: opts.hostname } : {}),
        ...(opts.certIp ? { ips: opts.certIp } : {}),
      }),
    );

  withDataDir(certificate.command("install"))
    .description("install an operator-provided certificate and key (checked: they match, not expired)")
    .requiredOption("--cert-file <file>", "PEM certificate")
    .requiredOption("--key-file <file>", "PEM private key")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { certFile: string; keyFile: string }) => {
      const paths = dataPaths(opts.dataDir);
      const info = await installCertificate(
        paths,
        await readFile(opts.certFile, "utf8"),
        await readFile(opts.keyFile, "utf8"),
      );
      if (await isAgentRunning(paths.controlSocket))
        await runCommand({ ...opts, json: true }, "notebook.restart", {}, true);
      print(opts.json, info, () => `installed certificate SHA-256 ${info.fingerprintSha256}`);
    });

  registerCertificateAcme(certificate);
}
