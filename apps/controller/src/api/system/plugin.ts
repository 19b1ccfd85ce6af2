import type {} from "@fastify/swagger";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/**
 * Operational routes without a token: `/healthz`, `/metrics` (Prometheus; a viewer token when
 * `metricsAccess` is `viewer`), `/docs` (OpenAPI).
 */
import { AGENT_VERSION, PROTOCOL_VERSION } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import { sql } from "kysely";
import { fileCertificateStatus } from "../../tls/files.js";

const OwnCertificate = Type.Object({
  source: Type.Literal("acme"),
  domain: Type.String(),
  issuer: Type.Object({
    kind: Type.Union([Type.Literal("acme"), Type.Literal("self-signed")]),
    name: Type.String(),
  }),
  notAfter: Type.String(),
  daysLeft: Type.Integer(),
  fingerprintSha256: Type.String(),
  directoryUrl: Type.String(),
  nextAttemptAt: Type.Union([Type.String(), Type.Null()]),
  lastIssuedAt: Type.Union([Type.String(), Type.Null()]),
  /** The last failure since the last success: ACME's message and when it is tried again. */
  failure: Type.Union([
    Type.Object({
      at: Type.String(),
      message: Type.String(),
      problemType: Type.Optional(Type.String()),
      failures: Type.Integer(),
      nextAttemptAt: Type.String(),
    }),
    Type.Null(),
  ]),
});

const FileCertificate = Type.Object({
  source: Type.Literal("files"),
  notAfter: Type.String(),
  /** Negative once expired. */
  daysLeft: Type.Integer(),
  fingerprintSha256: Type.String(),
  /** SHA-256 of its public key: a renewal with the same key keeps it, and pinned agents accept it. */
  keySha256: Type.String(),
  /** How guests verify it: its SHA-256 (or key, once seen) pinned, or the CA given with it. */
  guestsTrust: Type.Union([Type.Literal("pin"), Type.Literal("ca")]),
});

const Healthz = Type.Object({
  status: Type.Union([Type.Literal("ok"), Type.Literal("degraded")]),
  version: Type.String(),
  protocol: Type.String(),
  provider: Type.String(),
  agentsConnected: Type.Integer(),
  uptimeSec: Type.Number(),
  store: Type.Object({
    /** `error`: the database does not answer; `degraded`: writes fail and rows wait for a retry. */
    status: Type.Union([Type.Literal("ok"), Type.Literal("degraded"), Type.Literal("error")]),
    pendingRows: Type.Integer(),
    failures: Type.Integer(),
    lastError: Type.Optional(Type.String()),
    lastErrorAt: Type.Optional(Type.String()),
    nextRetryAt: Type.Optional(Type.String()),
    droppedRows: Type.Integer(),
  }),
  /** PostgreSQL only (absent with the embedded SQLite): whether the server answers, and why not. */
  database: Type.Optional(
    Type.Object({
      status: Type.Union([Type.Literal("ok"), Type.Literal("unreachable")]),
      /** host:port of the server (never the URL: it may carry a password). */
      address: Type.String(),
      /** The cause while unreachable, e.g. "refused the connection (ECONNREFUSED)". */
      error: Type.Optional(Type.String()),
      /** When the status last changed. */
      since: Type.String(),
    }),
  ),
  /**
   * Served over HTTPS: with `acmeDomain`, the controller's own certificate, its issuer, days left
   * and renewal; with certificate files, their end and the SHA-256s guests compare.
   */
  certificate: Type.Optional(Type.Union([OwnCertificate, FileCertificate])),
});

export const systemPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store, gateway, metrics, provider, startedAt, settings } = app.nbfleet;

  app.get(
    "/healthz",
    {
      config: { role: "public" },
      logLevel: "warn",
      schema: {
        tags: ["system"],
        summary: "Liveness of the controller",
        response: { 200: Healthz, 503: Healthz },
      },
    },
    async (_request, reply) => {
      // PostgreSQL: the monitor's last probe (at most a few seconds old), so an outage never
      // makes /healthz itself wait on a connect timeout.
      const database = store.database?.state;
      let storeOk = database ? database.status === "ok" : true;
      if (!database) {
        try {
          await sql`select 1`.execute(store.db);
        } catch {
          storeOk = false;
        }
      }
      // Failing writes keep their rows for a retry: degraded, but still alive (200).
      const writes = store.writer.health();
      reply.status(storeOk ? 200 : 503);
      return {
        status: storeOk && writes.status === "ok" ? ("ok" as const) : ("degraded" as const),
        version: AGENT_VERSION,
        protocol: PROTOCOL_VERSION,
        provider: provider.name,
        agentsConnected: gateway.connectedCount,
        uptimeSec: Math.round((Date.now() - startedAt.getTime()) / 1000),
        store: { ...writes, status: storeOk ? writes.status : ("error" as const) },
        ...(database ? { database } : {}),
        ...(app.ownCertificate ? { certificate: app.ownCertificate.status() } : {}),
        ...(app.servedTls ? { certificate: fileCertificateStatus(app.servedTls) } : {}),
      };
    },
  );

  // Figures from the store are cached (`metricsRefreshSec`): a scrape neither flushes pending
  // writes nor counts rows.
  app.get(
    "/metrics",
    {
      config: { role: settings.metricsAccess },
      logLevel: "warn",
      schema: { tags: ["system"], summary: "Prometheus metrics" },
    },
    async (_request, reply) => {
      reply.header("content-type", metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );

  app.get("/docs/json", { config: { role: "public" }, schema: { hide: true } }, async () => app.swagger());

  app.get("/docs", { config: { role: "public" }, schema: { hide: true } }, async (_request, reply) => {
    const spec = app.swagger() as { paths?: Record<string, Record<string, { summary?: string }>> };
    const rows = Object.entries(spec.paths ?? {})
      .flatMap(([path, methods]) =>
        Object.entries(methods).map(
          ([method, op]) =>
            `<tr><td>${method.toUpperCase()}</td><td>${escapeHtml(path)}</td><td>${escapeHtml(op.summary ?? "")}</td></tr>`,
        ),
      )
      .join("\n");
    reply.type("text/html; charset=utf-8");
    return `<!doctype html><title>nbfleet API</title><h1>nbfleet API</h1>
<p>OpenAPI 3 document: <a href="/docs/json">/docs/json</a>. Send <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<table>${rows}</table>`;
  });
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
