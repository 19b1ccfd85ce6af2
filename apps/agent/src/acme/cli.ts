/**
 * `nbfleet-agent certificate acme`: obtain the notebook's certificate from the ACME CA in the
 * settings (`certificate.*`, flags override them for this run) now, then restart a running
 * notebook server to serve it. A failure leaves the current certificate in place.
 */
import { stat } from "node:fs/promises";
import type { Command } from "commander";
import { type DataDirOption, print, runCommand, withDataDir } from "../cli/context.js";
import { loadSettings } from "../config/load.js";
import { dataPaths } from "../config/paths.js";
import type { CertificateSettings } from "../config/settings.js";
import { isAgentRunning } from "../control/client.js";
import { AgentError } from "../errors.js";
import { noteAcmeSource } from "../tls/certificate-source.js";

interface AcmeFlags extends DataDirOption {
  hostname?: string;
  directory?: string;
  email?: string;
  caFile?: string;
  challenge?: string;
  challengePort?: string;
  json?: boolean;
  restart: boolean;
}

export function registerCertificateAcme(certificate: Command): void {
  withDataDir(certificate.command("acme"))
    .description("obtain a certificate for this machine's DNS name over ACME now and serve it")
    .option("--hostname <name>", "the machine's public DNS name (certificate.hostname)")
    .option("--directory <url>", "the ACME directory URL (certificate.directoryUrl)")
    .option("--email <address>", "the ACME account's contact (certificate.email)")
    .option("--ca-file <file>", "CA certificate trusted for the ACME server's own TLS (certificate.caFile)")
    .option("--challenge <type>", "http-01 or tls-alpn-01 (certificate.challenge)")
    .option(
      "--challenge-port <port>",
      "the port the CA validates the challenge on (certificate.challengePort)",
    )
    .option("--no-restart", "leave a running notebook server as it is (the caller restarts it)")
    .option("--json", "print JSON (a failure too: {ok: false, code, message, details} on stdout)")
    .action(async (opts: AcmeFlags) => {
      try {
        await run(opts);
      } catch (error) {
        if (!opts.json || !(error instanceof AgentError)) throw error;
        console.log(
          JSON.stringify({ ok: false, code: error.code, message: error.message, details: error.details }),
        );
        process.exitCode = error.code === "NBF_INVALID_INPUT" ? 2 : 1;
      }
    });
}

async function run(opts: AcmeFlags): Promise<void> {
  const paths = dataPaths(opts.dataDir);
  const stored = await loadSettings(paths);
  const flags: Partial<CertificateSettings> = {
    ...(opts.hostname ? { hostname: opts.hostname } : {}),
    ...(opts.directory ? { directoryUrl: opts.directory } : {}),
    ...(opts.email ? { email: opts.email } : {}),
    ...(opts.caFile ? { caFile: opts.caFile } : {}),
    ...(opts.challenge ? { challenge: opts.challenge as CertificateSettings["challenge"] } : {}),
    ...(opts.challengePort ? { challengePort: Number(opts.challengePort) } : {}),
  };
  // Checked like the settings file: a bad flag is named with the field it sets.
  const { certificate: settings } = await loadSettings(paths, {
    certificate: { ...stored.certificate, ...flags, mode: "acme" },
  });
  // Loaded here: acme-client and its HTTP stack stay out of every other command's start-up.
  const { obtainCertificate } = await import("./obtain.js");
  // The new pair is owned like the one it replaces: the notebook's user must read the key.
  const owner = await stat(paths.keyFile).then(
    (current) => ({ uid: current.uid, gid: current.gid }),
    () => undefined,
  );
  const result = await obtainCertificate({ settings, paths, ...(owner ? { owner } : {}) });
  await noteAcmeSource(paths.stateDir, result.info.fingerprintSha256, result.directoryUrl);
  if (opts.restart && (await isAgentRunning(paths.controlSocket)))
    await runCommand({ ...opts, json: true }, "notebook.restart", {}, true);
  print(
    opts.json,
    { ok: true, ...result.info, issuer: result.issuer, directoryUrl: result.directoryUrl },
    () =>
      `installed a certificate for ${settings.hostname} from ${result.issuer} (${result.directoryUrl}), valid until ${result.info.notAfter}, SHA-256 ${result.info.fingerprintSha256}`,
  );
}
