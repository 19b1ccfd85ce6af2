/**
 * One certificate for one DNS name from an ACME CA (RFC 8555, through acme-client): the account
 * (its key kept 0600 where the caller says), an order, the challenge answered while the CA
 * validates it, then a new key and CSR made here (the key never leaves this process) and the
 * issued chain checked (check-chain.ts). Nothing is written but the account key: the caller
 * installs what comes back. Any failure throws NBF_ACME_FAILED naming the step and the ACME
 * problem, so the caller keeps its current certificate.
 */
import { readFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import acme from "acme-client";
import { loadOrCreateAccountKey } from "./account-key.js";
import { type ChallengeType, startChallengeResponder } from "./challenge-responder.js";
import { checkIssuedChain } from "./check-chain.js";
import { AcmeError } from "./error.js";
import { isProblem, problemError, stepError } from "./problem.js";
import { httpsAgentFor, registerAcmeServer } from "./transport.js";

/** A challenge to answer while the CA validates it. */
export interface ChallengeToAnswer {
  type: ChallengeType;
  hostname: string;
  token: string;
  keyAuthorization: string;
  authz: acme.Authorization;
}

/** Answers a challenge until `close()`; throws NBF_ACME_FAILED when it cannot. */
export type AnswerChallenge = (challenge: ChallengeToAnswer) => Promise<{ close(): Promise<void> }>;

export interface IssueOptions {
  hostname: string;
  directoryUrl: string;
  email: string | null;
  /** A PEM CA trusted for the ACME server's own TLS (null: the system's roots). */
  caFile: string | null;
  /** How the caller's settings name `caFile`, for messages ("certificate.caFile", "NBFLEET_ACME_CA_FILE"). */
  caFileSetting?: string;
  accountKeyFile: string;
  challenge: ChallengeType;
  /**
   * Who answers the challenge: a listener of the caller's own, or (the default) a responder this
   * package starts on `port` (and `host`, all addresses by default) for the validation only.
   */
  answer?: AnswerChallenge | { port: number; host?: string };
  /** The whole issuance, from the directory to the checked chain (default 120 s). */
  timeoutMs?: number;
}

export interface IssuedChain {
  /** The leaf first, then the intermediates the CA sent. */
  chainPem: string;
  keyPem: string;
  /** The issuing CA's common name (the leaf's issuer), for the health model. */
  issuer: string;
  directoryUrl: string;
  notBefore: string;
  notAfter: string;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export async function issueCertificate(options: IssueOptions): Promise<IssuedChain> {
  const { hostname } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const answers = new Set<{ close(): Promise<void> }>();
  let abandoned = false;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abandoned = true;
      reject(
        new AcmeError(
          `ACME issuance for ${hostname} did not finish within ${timeoutMs} ms; the current certificate was kept`,
          { step: "deadline", timeoutMs, directoryUrl: options.directoryUrl },
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([issue(options, answers, () => abandoned), deadline]);
  } finally {
    clearTimeout(timer);
    await Promise.all([...answers].map((answer) => answer.close()));
  }
}

async function issue(
  options: IssueOptions,
  answers: Set<{ close(): Promise<void> }>,
  abandoned: () => boolean,
): Promise<IssuedChain> {
  const { hostname, directoryUrl } = options;
  const caSetting = options.caFileSetting ?? "the ACME CA file";
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw stepError(name, error, { directoryUrl });
    }
  };

  const caPem = options.caFile
    ? await step(`reading ${caSetting} ${options.caFile}`, () => readFile(options.caFile as string, "utf8"))
    : null;
  registerAcmeServer(directoryUrl, caPem);
  await step(`directory ${directoryUrl}`, () => probeDirectory(directoryUrl, options.caFile, caSetting));

  const accountKey = await step("account key", () => loadOrCreateAccountKey(options.accountKeyFile));
  // Polls every 0.2 s growing to 2 s: the CA validates in seconds, and the deadline bounds the rest.
  const client = new acme.Client({
    directoryUrl,
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
      contact: options.email ? [`mailto:${options.email}`] : [],
    }),
  );
  const order = await step("new order", () =>
    client.createOrder({ identifiers: [{ type: "dns", value: hostname }] }),
  );
  const authorizations = await step("authorizations", () => client.getAuthorizations(order));
  const answer = answererOf(options);

  for (const authz of authorizations) {
    if (authz.status === "valid") continue;
    const challenge = authz.challenges.find((offered) => offered.type === options.challenge);
    if (!challenge) {
      throw new AcmeError(
        `the ACME server offers ${authz.challenges.map((c) => c.type).join(", ") || "no challenges"} for ${authz.identifier.value}, not ${options.challenge}; choose a challenge it offers`,
        { step: "challenge", offered: authz.challenges.map((c) => c.type), wanted: options.challenge },
      );
    }
    const keyAuthorization = await step("key authorization", () =>
      client.getChallengeKeyAuthorization(challenge),
    );
    const answering = await answer({
      type: options.challenge,
      hostname: authz.identifier.value,
      token: challenge.token,
      keyAuthorization,
      authz,
    });
    answers.add(answering);
    try {
      await step(`${options.challenge} challenge`, () => client.completeChallenge(challenge));
      await client.waitForValidStatus(challenge).catch(async (error: unknown) => {
        throw await challengeFailure(client, order, authz, challenge.url, options.challenge, error);
      });
    } finally {
      answers.delete(answering);
      await answering.close();
    }
  }

  const [keyPem, csr] = await step("certificate request", async () => {
    const key = await acme.crypto.createPrivateEcdsaKey("P-256");
    return acme.crypto.createCsr({ commonName: hostname, altNames: [hostname] }, key);
  });
  const finalized = await step("finalize", () => client.finalizeOrder(order, csr));
  const chainPem = await step("certificate download", () => client.getCertificate(finalized));
  if (abandoned()) throw stepError("install", new Error("the issuance ran past its deadline"));

  const { leaf } = checkIssuedChain(chainPem, keyPem.toString(), hostname);
  return {
    chainPem,
    keyPem: keyPem.toString(),
    issuer: issuerOf(leaf.issuer),
    directoryUrl,
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
  };
}

function answererOf(options: IssueOptions): AnswerChallenge {
  const answer = options.answer ?? { port: options.challenge === "http-01" ? 80 : 443 };
  if (typeof answer === "function") return answer;
  return (challenge) =>
    startChallengeResponder({
      type: challenge.type,
      port: answer.port,
      ...(answer.host ? { host: answer.host } : {}),
      token: challenge.token,
      keyAuthorization: challenge.keyAuthorization,
      authz: challenge.authz,
    });
}

/** The challenge's own error from the CA (re-read: acme-client's message drops its type). */
async function challengeFailure(
  client: acme.Client,
  order: acme.Order,
  authz: acme.Authorization,
  challengeUrl: string,
  type: string,
  original: unknown,
): Promise<AcmeError> {
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
function probeDirectory(directoryUrl: string, caFile: string | null, caSetting: string): Promise<void> {
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
            ? `the ACME server's TLS certificate is not trusted (${error.message}); ${caFile ? `is ${caFile} the CA that issued it?` : `set ${caSetting} to the CA of a private ACME server`}`
            : `cannot reach ${directoryUrl}: ${error.message}`,
        ),
      );
    });
    req.end();
  });
}

/** The CN of an X509Certificate `issuer` string ("C=US\nO=…\nCN=Pebble Intermediate CA 1a2b"). */
function issuerOf(issuer: string): string {
  const cn = issuer.split("\n").find((line) => line.startsWith("CN="));
  return cn ? cn.slice(3) : issuer.replace(/\n/g, ", ") || "unknown";
}
