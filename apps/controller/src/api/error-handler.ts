/**
 * Maps every error a route can raise onto the catalogue: NbfError as is, fastify's schema and
 * body errors onto NBF_INVALID_* / NBF_BODY_TOO_LARGE / NBF_INVALID_JSON naming the field,
 * anything else onto NBF_INTERNAL (logged, never leaked). An error answered before the request's
 * body was read closes the connection. The router's own refusals, raised before any route or
 * hook runs, go through the same mapping (answerFrameworkError, the app's `frameworkErrors`).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type ErrorCode, NbfError } from "../errors.js";

interface AjvError {
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

const CONTEXT_CODE: Record<string, ErrorCode> = {
  body: "NBF_INVALID_BODY",
  querystring: "NBF_INVALID_QUERY",
  params: "NBF_INVALID_PARAMS",
  headers: "NBF_INVALID_QUERY",
};

export function installErrorHandler(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((error: FastifyError, request, reply) =>
    answer(toNbfError(error, bodyLimit, request.headers["content-type"]), error, request, reply),
  );
  // An unknown route is answered at once, before a body is read (the 404 handler itself runs
  // only after body parsing).
  app.addHook("onRequest", async (request) => {
    if (request.routeOptions.url === undefined) throw notFound(request);
  });
  app.setNotFoundHandler((request, reply) => {
    const error = notFound(request);
    return reply.status(error.status).send(error.toJSON());
  });
}

/**
 * For the app's `frameworkErrors`: a path the router cannot decode (a malformed percent-encoding)
 * or a path parameter past its length limit, answered in the catalogue's shape.
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  return answer(toNbfError(error, 0), error, request, reply);
}

function answer(nbf: NbfError, error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  // A database outage is logged once by the store's monitor, not once per request.
  if (nbf.status >= 500 && nbf.code !== "NBF_DATABASE_UNAVAILABLE")
    request.log.error({ err: error }, "request failed");
  else request.log.debug({ code: nbf.code }, nbf.message);
  // Refused before its body arrived (no token, wrong role): the connection is not kept for
  // the rest of that body, which a hostile client could trickle in for as long as it likes.
  if (!request.raw.complete) reply.header("connection", "close");
  return reply.status(nbf.status).send(nbf.toJSON());
}

function notFound(request: FastifyRequest): NbfError {
  return new NbfError("NBF_ROUTE_NOT_FOUND", { method: request.method, url: request.url.split("?")[0] });
}

export function toNbfError(error: FastifyError, bodyLimit: number, contentType?: string): NbfError {
  if (error instanceof NbfError) return error;
  if (Array.isArray(error.validation)) {
    const problems = (error.validation as AjvError[]).map(describe);
    const field = problems[0]?.field ?? "(root)";
    return new NbfError(CONTEXT_CODE[error.validationContext ?? "body"] ?? "NBF_INVALID_BODY", {
      field,
      problems: problems.map((p) => `${p.field}: ${p.message}`).join("; "),
    });
  }
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new NbfError("NBF_BODY_TOO_LARGE", { limit: bodyLimit });
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new NbfError("NBF_UNSUPPORTED_MEDIA_TYPE", { contentType: contentType ?? "(none)" });
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new NbfError("NBF_INVALID_JSON", { reason: "the body is empty but the content type is JSON" });
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new NbfError("NBF_INVALID_JSON", { reason: error.message });
    // Fastify's messages name the path as sent.
    case "FST_ERR_BAD_URL":
      return new NbfError("NBF_INVALID_PARAMS", {
        problems: `${error.message}: a %-escape in it is malformed or not UTF-8`,
      });
    case "FST_ERR_MAX_PARAM_LENGTH":
      return new NbfError("NBF_INVALID_PARAMS", { problems: error.message });
  }
  if (error instanceof SyntaxError || (error.statusCode === 400 && /JSON/i.test(error.message))) {
    return new NbfError("NBF_INVALID_JSON", { reason: error.message });
  }
  return new NbfError("NBF_INTERNAL", { reason: "see the controller log" });
}

function describe(error: AjvError): { field: string; message: string } {
  const base = error.instancePath.replace(/^\//, "").replaceAll("/", ".");
  const join = (name: unknown) => (base ? `${base}.${String(name)}` : String(name));
  if (error.params.missingProperty !== undefined) {
    return { field: join(error.params.missingProperty), message: "is required" };
  }
  if (error.params.additionalProperty !== undefined) {
    return { field: join(error.params.additionalProperty), message: "is not a known field" };
  }
  return { field: base || "(root)", message: error.message ?? "is invalid" };
}
