/**
 * Obtains a certificate for the machine's DNS name from an ACME CA (RFC 8555, through
 * acme-client): account (key kept 0600 in the state dir), order, the challenge answered by the
 * agent itself while the CA validates it, then a new key and CSR made here (the key never
 * leaves the machine) and the issued chain installed as the notebook's cert.pem/key.pem.
 * Nothing is written until the chain is in hand and checked against its key: any failure
 * leaves the current certificate as it was and throws NBF_ACME_FAILED naming the ACME problem.
 */
import { readFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import acme from "acme-client";
import type { CertificateSettings } from "../config/settings.js";
import { AgentError } from "../errors.js";
import { type CertificatePaths, installCertificate } from "../tls/ensure.js";
import { type CertificateDetails, checkPair } from "../tls/inspect.js";
import type { FileOwner } from "../util/atomic-write.js";
import { loadOrCreateAccountKey } from "./account-key.js";
import { type ChallengeResponder, startChallengeResponder } from "./challenge-responder.js";
import { isProblem, problemError, stepError } from "./problem.js";
import { httpsAgentFor, registerAcmeServer } from "./transport.js";

export type AcmeSettings = Pick<
  CertificateSettings,
  "directoryUrl" | "email" | "hostname" | "caFile" | "challenge" | "challengePort"
>;

export interface ObtainOptions {
  settings: AcmeSettings;
  paths: CertificatePaths & { acmeAccountKey: string };
  owner?: FileOwner;
  /** The address the challenge responder listens on (default: all of the machine's). */
  challengeHost?: string;
  /** The whole issuance, from the directory to the installed chain. */
  timeoutMs?: number;
}

export interface ObtainResult {
  info: CertificateDetails;
  /** The issuing CA's subject (the leaf's issuer), for the health model. */
  issuer: string;
  directoryUrl: string;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export async function obtainCertificate(options: ObtainOptions): Promise<ObtainResult> {
  const { settings } = options;
  const hostname = settings.hostname;
  if (!hostname) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "certificate.hostname is not set: ACME needs the machine's DNS name",
      {
        field: "certificate.hostname",
      },
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const responders = new Set<ChallengeResponder>();
  let abandoned = false;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abandoned = true;
      reject(
        new AgentError(
          "NBF_ACME_FAILED",
          `ACME issuance for ${hostname} did not finish within ${timeoutMs} ms; the current certificate was kept`,
          { step: "deadline", timeoutMs, directoryUrl: settings.directoryUrl },
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([issue(options, hostname, responders, () => abandoned), deadline]);
  } finally {
    clearTimeout(timer);
    await Promise.all([...responders].map((responder) => responder.close()));
  }
}

async function issue(
  options: ObtainOptions,
  hostname: string,
  responders: Set<ChallengeResponder>,
  abandoned: () => boolean,
): Promise<ObtainResult> {
  const { settings } = options;
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw stepError(name, error, { directoryUrl: settings.directoryUrl });
    }
  };

  const caPem = settings.caFile
    ? await step(`reading certificate.caFile ${settings.caFile}`, () =>
        readFile(settings.caFile as string, "utf8"),
      )
    : null;
  registerAcmeServer(settings.directoryUrl, caPem);
  await step(`directory ${settings.directoryUrl}`, () =>
    probeDirectory(settings.directoryUrl, settings.caFile),
  );

  const accountKey = await step("account key", () => loadOrCreateAccountKey(options.paths.acmeAccountKey));
  // Polls every 0.2 s growing to 2 s: the CA validates in seconds, and the deadline bounds the rest.
  const client = new acme.Client({
    directoryUrl: settings.directoryUrl,
    accountKey,
    backoffAttempts: 60,
    backoffMin: 200,
    backoffMax: 2000,
  });
  await step("account", () =>
    client.createAccount({
      termsOfServiceAgreed: true,
      // Always sent: for an existing account acme-client turns this into an update, which brings
      // its contact in line with the settings (and is never the empty update servers refuse).
      contact: settings.email ? [`mailto:${settings.email}`] : [],
    }),
  );
  const order = await step("new order", () =>
    client.createOrder({ identifiers: [{ type: "dns", value: hostname }] }),
  );
  const authorizations = await step("authorizations", () => client.getAuthorizations(order));

  for (const authz of authorizations) {
    if (authz.status === "valid") continue;
    const challenge = authz.challenges.find((offered) => offered.type === settings.challenge);
    if (!challenge) {
      throw new AgentError(
        "NBF_ACME_FAILED",
        `the ACME server offers ${authz.challenges.map((c) => c.type).join(", ") || "no challenges"} for ${authz.identifier.value}, not ${settings.challenge}; set certificate.challenge to one it offers`,
        { step: "challenge", offered: authz.challenges.map((c) => c.type), wanted: settings.challenge },
      );
    }
    const keyAuthorization = await step("key authorization", () =>
      client.getChallengeKeyAuthorization(challenge),
    );
    const responder = await startChallengeResponder({
      type: settings.challenge,
      port: settings.challengePort,
      ...(options.challengeHost ? { host: options.challengeHost } : {}),
      token: challenge.token,
      keyAuthorization,
      authz,
    });
    responders.add(responder);
    try {
      await step(`${settings.challenge} challenge`, () => client.completeChallenge(challenge));
      await client.waitForValidStatus(challenge).catch(async (error: unknown) => {
        throw await challengeFailure(client, order, authz, challenge.url, settings.challenge, error);
      });
    } finally {
      responders.delete(responder);
      await responder.close();
    }
  }

  const [keyPem, csr] = await step("certificate request", async () => {
    const key = await acme.crypto.createPrivateEcdsaKey("P-256");
    return acme.crypto.createCsr({ commonName: hostname, altNames: [hostname] }, key);
  });
  const finalized = await step("finalize", () => client.finalizeOrder(order, csr));
  const chainPem = await step("certificate download", () => client.getCertificate(finalized));
  if (abandoned()) throw stepError("install", new Error("the issuance ran past its deadline"));

  // Checked before anything is written: the chain parses, matches the key made here, is valid
  // now and names this machine; otherwise the current pair stays.
  let checked: CertificateDetails;
  try {
    checked = checkPair(chainPem, keyPem.toString(), new Date(), {
      cert: "the issued chain",
      key: "the key made for it",
    });
  } catch (error) {
    throw stepError("checking the issued chain", new Error((error as Error).message));
  }
  if (!checked.subjectAltNames.includes(`DNS:${hostname.toLowerCase()}`)) {
    throw new AgentError(
      "NBF_ACME_FAILED",
      `the ACME server issued a certificate for ${checked.subjectAltNames.join(", ") || "no names"}, not ${hostname}; the current certificate was kept`,
      { step: "checking the issued chain", subjectAltNames: checked.subjectAltNames },
    );
  }
  const info = await step("install", () =>
    installCertificate(
      options.paths,
      chainPem,
      keyPem.toString(),
      options.owner ? { owner: options.owner } : {},
    ),
  );
  return { info, issuer: issuerOf(chainPem), directoryUrl: settings.directoryUrl };
}

/** The challenge's own error from the CA (re-read: acme-client's message drops its type). */
async function challengeFailure(
  client: acme.Client,
  order: acme.Order,
  authz: acme.Authorization,
  challengeUrl: string,
  type: string,
  original: unknown,
): Promise<AgentError> {
  const step = `${type} challenge for ${authz.identifier.value}`;
  try {
    const fresh = (await client.getAuthorizations(order)).find((candidate) => candidate.url === authz.url);
    const problem = fresh?.challenges.find((challenge) => challenge.url === challengeUrl)?.error;
    if (isProblem(problem)) return problemError(problem, { step });
  } catch {
    // The original error still says what happened.
  }
  return stepError(step, original);
}

/**
 * The directory fetched once before acme-client starts: an unreachable server or an untrusted
 * TLS certificate is named here plainly (acme-client 5.4 turns a connection failure into a
 * TypeError from inside its retry handler).
 */
function probeDirectory(directoryUrl: string, caFile: string | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      directoryUrl,
      { agent: httpsAgentFor(directoryUrl), timeout: 15_000 },
      (response) => {
        response.resume();
        if (response.statusCode === 200) resolve();
        else reject(new Error(`GET ${directoryUrl} answered HTTP ${response.statusCode}`));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer from ${directoryUrl} within 15 s`)));
    req.on("error", (error: NodeJS.ErrnoException) => {
      const tls = error.code?.startsWith("ERR_TLS") || /certificate/i.test(error.message);
      reject(
        new Error(
          tls
            ? `the ACME server's TLS certificate is not trusted (${error.message}); ${caFile ? `is ${caFile} the CA that issued it?` : "set certificate.caFile to the CA of a private ACME server"}`
            : `cannot reach ${directoryUrl}: ${error.message}`,
        ),
      );
    });
    req.end();
  });
}

function issuerOf(chainPem: string): string {
  try {
    return acme.crypto.readCertificateInfo(chainPem).issuer.commonName;
  } catch {
    return "unknown";
  }
}
