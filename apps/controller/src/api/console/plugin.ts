/**
 * The web console, served at `/` from its build (locate.ts): hashed files under /assets/ are
 * cached for good (precompressed .br/.gz when the browser accepts them), and each console page
 * path answers index.html, which is never cached. Only the console's own paths are routes, so
 * the API's prefixes (/v1, /internal, /docs, /healthz, /metrics) keep their own answers and 404s.
 * Without a build, the pages answer 503 saying how to build it; the API works regardless.
 */
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { CONSOLE_BUILD_COMMAND, consoleCandidates, locateConsole } from "./locate.js";

/** The console's client-side routes: each serves index.html. */
export const CONSOLE_PAGES = [
  "/",
  "/sign-in",
  "/vms/:name",
  "/operations",
  "/operations/:id",
  "/events",
  "/tokens",
  "/policies",
] as const;

/** Every route this plugin registers, built or not. */
export const CONSOLE_ROUTES = [...CONSOLE_PAGES, "/assets/*"] as const;

export const CONSOLE_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
} as const;

const ONE_YEAR_MS = 31_536_000_000;

export async function consolePlugin(app: FastifyInstance): Promise<void> {
  const root = locateConsole(app.nbfleet.settings.consoleDir);
  // Only this plugin's routes: the API's answers keep their own headers.
  app.addHook("onSend", async (_request, reply) => {
    reply.headers(CONSOLE_HEADERS);
  });
  const page = { config: { role: "public" as const }, schema: { hide: true } };

  if (!root) {
    const tried = consoleCandidates(app.nbfleet.settings.consoleDir).join(", ");
    const text = `The nbfleet web console is not built (looked in ${tried}).\nBuild it with: ${CONSOLE_BUILD_COMMAND}\n(pnpm start builds it for you.) The API under /v1 works without it.\n`;
    for (const url of CONSOLE_ROUTES) {
      app.get(url, page, async (_request, reply) =>
        reply.status(503).header("cache-control", "no-store").type("text/plain; charset=utf-8").send(text),
      );
    }
    return;
  }

  await app.register(fastifyStatic, {
    root,
    serve: false,
    preCompressed: true,
    index: false,
    dotfiles: "deny",
  });
  app.get("/assets/*", page, async (request, reply) => {
    const file = (request.params as { "*": string })["*"];
    // send sets Cache-Control only when the file is there: a 404 is not cached for a year.
    return reply.sendFile(`assets/${file}`, { immutable: true, maxAge: ONE_YEAR_MS });
  });
  for (const url of CONSOLE_PAGES) {
    app.get(url, page, async (_request, reply) => {
      reply.header("cache-control", "no-cache");
      return reply.sendFile("index.html", { cacheControl: false });
    });
  }
}
