import type { Server as TlsServer } from "node:tls";
/**
 * buildServer: the controller as one fastify app — store (migrated), first admin token,
 * agent gateway, commands, event bus, metrics and the API plugins — wired to a Provider.
 * `app.close()` closes agent links, stops timers and flushes the store before closing it.
 * It reads as its steps: open the store, wire the services (wiring/services.ts), register
 * the routes (wiring/plugins.ts), start the services (wiring/lifecycle.ts).
 *
 * Start-up order (each needs the ones above it):
 *   store ─┬─ admin token
 *          ├─ event bus ── commands ── gateway ─┬─ VM service ─┬─ operations, idle policy
 *          └─ metrics ─────┘                    │              └─ routes
 *                                               └─ terminals, log streams
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { answerFrameworkError } from "./api/error-handler.js";
import { serverTimeouts } from "./api/timeouts.js";
import type { ArtifactInfo } from "./artifact-info.js";
import { type ControllerSettings, parseListen } from "./config/settings.js";
import type { Provider } from "./providers/types.js";
import { outageQuietLog } from "./store/outage-quiet-log.js";
import { isConnectionError } from "./store/postgres-errors.js";
import { openStore } from "./store/store.js";
import type { OwnAcmeCertificate } from "./tls/acme/own-certificate.js";
import { type ControllerTls, RENEW_WARNING_DAYS, fileCertificateStatus, readTlsFiles } from "./tls/files.js";
import { runServices, stopLeasedJobsFirst } from "./wiring/lifecycle.js";
import { registerPlugins } from "./wiring/plugins.js";
import { wireServices } from "./wiring/services.js";
import { watchShutdown } from "./wiring/shutdown-watch.js";

/** Log fields that may hold secrets; pino replaces them with "[redacted]". */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "authorization",
  "password",
  "token",
  "credential",
  "bootstrapToken",
  "passwordHash",
  "*.password",
  "*.token",
  "*.credential",
  "*.bootstrapToken",
  "*.passwordHash",
  "*.authorization",
];

export interface BuildOptions {
  provider: Provider;
  /** The agent artifact to serve to guests at /v1/agent/artifact (real providers need it). */
  artifact?: ArtifactInfo;
  /** A ready logger (e.g. pretty for a TTY); otherwise JSON logs at `settings.logLevel`. */
  logger?: FastifyBaseLogger;
  /** This process's clock (tests give a replica a skewed one); Date.now otherwise. */
  localClock?: () => number;
}

export type NbfleetApp = FastifyInstance;

export async function buildServer(settings: ControllerSettings, options: BuildOptions): Promise<NbfleetApp> {
  const ownCertificate = await prepareOwnCertificate(settings);
  // With a certificate and key the API and the agent gateway are served over HTTPS (wss).
  const servedTls = ownCertificate ? null : readTlsFiles(settings);
  const app = createApp(settings, options.logger, ownCertificate, servedTls);
  const store = await openStore({
    dataDir: settings.dataDir,
    ...(settings.databaseUrl ? { databaseUrl: settings.databaseUrl } : {}),
    flushMs: settings.stateFlushMs,
    flushMaxItems: settings.stateFlushMaxItems,
    // While PostgreSQL is unreachable the monitor's one line says so (onDatabaseChange).
    onError: (error, health) =>
      isConnectionError(error)
        ? app.log.debug({ err: error, store: health }, "store write failed; its rows are kept and retried")
        : app.log.error({ err: error, store: health }, "store write failed; its rows are kept and retried"),
    onDatabaseChange: (state) =>
      state.status === "ok"
        ? app.log.warn({ database: state.address }, `PostgreSQL at ${state.address} answers again`)
        : app.log.error(
            { database: state.address, cause: state.error },
            `PostgreSQL at ${state.address} is unreachable: ${state.error}; API calls that need it answer 503 until it is back`,
          ),
    onRecovered: (failures) => app.log.warn({ failures }, "store writes succeed again; pending rows written"),
  });
  try {
    const services = await wireServices(settings, store, {
      provider: options.provider,
      log: outageQuietLog(app.log),
      controllerUrl: () => settings.publicUrl ?? acmeUrl(app, settings) ?? listeningUrl(app, settings.listen),
      listeningUrl: () => listeningUrl(app, settings.listen),
      ...(options.artifact ? { artifact: options.artifact } : {}),
      ...(options.localClock ? { localClock: options.localClock } : {}),
      servedTls,
    });
    app.decorate("nbfleet", services);
    app.decorate("ownCertificate", ownCertificate);
    app.decorate("servedTls", servedTls);
    if (servedTls) warnOfExpiry(app, settings, servedTls);
    if (ownCertificate) {
      app.addHook("onListen", async () => {
        ownCertificate.start(app.server as unknown as TlsServer, {
          emit: (event) => services.bus.emit(event),
          log: app.log,
        });
      });
      app.addHook("onClose", async () => ownCertificate.stop());
    }
    watchShutdown(app);
    stopLeasedJobsFirst(app);
    await registerPlugins(app, options.artifact);
    await runServices(app);
    return app;
  } catch (error) {
    await store.close();
    throw error;
  }
}

function createApp(
  settings: ControllerSettings,
  logger: FastifyBaseLogger | undefined,
  ownCertificate: OwnAcmeCertificate | null,
  tls: ControllerTls | null,
): NbfleetApp {
  const timeouts = serverTimeouts(settings);
  return Fastify({
    ...(ownCertificate
      ? { https: { ...ownCertificate.httpsOptions(), ...timeouts.node } }
      : tls
        ? { https: { cert: tls.certPem, key: tls.keyPem, ...timeouts.node } }
        : { http: timeouts.node }),
    requestTimeout: timeouts.requestTimeout,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    ...(logger
      ? { loggerInstance: logger }
      : { logger: { level: settings.logLevel, redact: { paths: REDACT_PATHS, censor: "[redacted]" } } }),
    bodyLimit: settings.bodyLimitBytes,
    // Long-lived responses (event streams) must not hold up a shutdown.
    forceCloseConnections: true,
    // The router's refusals (a path it cannot decode) skip the error handler otherwise.
    frameworkErrors: answerFrameworkError,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: "array", useDefaults: true, allErrors: false },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
}

/** Certificate files near their end: pinned agents do not mind, browsers and CLIs will. */
function warnOfExpiry(app: NbfleetApp, settings: ControllerSettings, tls: ControllerTls): void {
  const { daysLeft, notAfter } = fileCertificateStatus(tls);
  if (daysLeft >= RENEW_WARNING_DAYS) return;
  app.log.warn(
    { certificate: settings.tlsCert, notAfter, daysLeft },
    `the controller's certificate ${settings.tlsCert} ${daysLeft < 0 ? "expired" : "expires"} at ${notAfter}; ` +
      "renew it with the same key (README: the HA recipe, step 5) and pinned agents accept the new one",
  );
}

/** Listens on `settings.listen`; resolves with the URL. */
export async function listen(app: NbfleetApp): Promise<string> {
  const { host, port } = parseListen(app.nbfleet.settings.listen);
  await app.listen({ host, port });
  return listeningUrl(app, app.nbfleet.settings.listen);
}

async function prepareOwnCertificate(settings: ControllerSettings): Promise<OwnAcmeCertificate | null> {
  if (!settings.acmeDomain) return null;
  // Loaded only here: acme-client and its HTTP stack stay out of controllers without ACME.
  const { OwnAcmeCertificate } = await import("./tls/acme/own-certificate.js");
  return OwnAcmeCertificate.prepare({
    domain: settings.acmeDomain,
    directoryUrl: settings.acmeDirectory,
    email: settings.acmeEmail,
    caFile: settings.acmeCaFile,
    dataDir: settings.dataDir,
  });
}

/** The ACME-served controller is reached by its name: `https://<acmeDomain>:<port>`. */
function acmeUrl(app: FastifyInstance, settings: ControllerSettings): string | null {
  if (!settings.acmeDomain) return null;
  const address = app.server.address();
  const port =
    address !== null && typeof address !== "string" ? address.port : parseListen(settings.listen).port;
  return `https://${settings.acmeDomain}${port === 443 ? "" : `:${port}`}`;
}

function listeningUrl(app: FastifyInstance, fallback: string): string {
  const scheme = app.nbfleet?.settings.tlsCert || app.nbfleet?.settings.acmeDomain ? "https" : "http";
  const address = app.server.address();
  if (address === null || typeof address === "string") return `${scheme}://${fallback}`;
  const host = address.address === "0.0.0.0" || address.address === "::" ? "127.0.0.1" : address.address;
  return `${scheme}://${address.family === "IPv6" && host.includes(":") ? `[${host}]` : host}:${address.port}`;
}
