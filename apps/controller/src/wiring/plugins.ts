/**
 * Everything the controller answers over HTTP, registered on an app already decorated with its
 * services (`app.nbfleet`): authentication and error handling first, then OpenAPI and WebSocket
 * support, the agent gateway, the API plugins, and the agent artifact when there is one.
 */
import fastifySwagger from "@fastify/swagger";
import fastifyWebsocket from "@fastify/websocket";
import { AGENT_VERSION } from "@nbfleet/shared";
import type { FastifyInstance } from "fastify";
import { agentArtifactCatalogPlugin } from "../api/agent-artifact/catalog-plugin.js";
import { agentArtifactPlugin } from "../api/agent-artifact/plugin.js";
import { bootstrapTokenPlugin } from "../api/bootstrap-token/plugin.js";
import { commandsPlugin } from "../api/commands/plugin.js";
import { consolePlugin } from "../api/console/plugin.js";
import { installErrorHandler } from "../api/error-handler.js";
import { eventsPlugin } from "../api/events/plugin.js";
import { fleetPlugin } from "../api/fleet/plugin.js";
import { logsPlugin } from "../api/logs/plugin.js";
import { notebookPlugin } from "../api/notebook/plugin.js";
import { operationsPlugin } from "../api/operations/plugin.js";
import { policiesPlugin } from "../api/policies/plugin.js";
import { replicasPlugin } from "../api/replicas/plugin.js";
import { sessionPlugin } from "../api/session/plugin.js";
import { systemPlugin } from "../api/system/plugin.js";
import { terminalPlugin } from "../api/terminal/plugin.js";
import { tokensPlugin } from "../api/tokens/plugin.js";
import { installValidator } from "../api/validator.js";
import { vmsPlugin } from "../api/vms/plugin.js";
import type { ArtifactInfo } from "../artifact-info.js";
import { installAuth } from "../auth/hook.js";
import { relayRoutesPlugin } from "../cluster/relay/relay-routes.js";
import { endAfterSocketError } from "../gateway/socket-close.js";

const API_PLUGINS = [
  vmsPlugin,
  bootstrapTokenPlugin,
  notebookPlugin,
  commandsPlugin,
  tokensPlugin,
  sessionPlugin,
  eventsPlugin,
  systemPlugin,
  operationsPlugin,
  policiesPlugin,
  terminalPlugin,
  logsPlugin,
  replicasPlugin,
  fleetPlugin,
  relayRoutesPlugin,
  consolePlugin,
  agentArtifactCatalogPlugin,
];

export async function registerPlugins(
  app: FastifyInstance,
  artifact: ArtifactInfo | undefined,
): Promise<void> {
  const { settings, store } = app.nbfleet;
  installAuth(app, { tokens: store.tokens, sessions: store.sessions, publicUrl: settings.publicUrl });
  installErrorHandler(app, settings.bodyLimitBytes);
  installValidator(app);
  await registerOpenApi(app);
  await registerWebSockets(app);
  app.nbfleet.gateway.register(app);
  for (const plugin of API_PLUGINS) await app.register(plugin);
  if (artifact) await app.register(agentArtifactPlugin, { artifact });
}

async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: "nbfleet controller API", version: AGENT_VERSION },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });
}

/** WebSocket support for the gateway and terminals; its pre-close ends their connections. */
async function registerWebSockets(app: FastifyInstance): Promise<void> {
  const { settings, logs, terminals, gateway, relay } = app.nbfleet;
  await app.register(fastifyWebsocket, {
    options: { maxPayload: settings.maxMessageBytes, perMessageDeflate: false, clientTracking: false },
    errorHandler: (error, socket) => {
      app.log.debug({ err: error }, "agent socket error");
      endAfterSocketError(socket);
    },
    preClose: (done) => {
      // Terminals first: their clients hear why, and their audit rows are written before
      // the store closes.
      logs.close();
      relay.close();
      void terminals.close().finally(() => {
        gateway.close();
        done();
      });
    },
  });
}
