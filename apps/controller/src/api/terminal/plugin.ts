import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/**
 * Terminal routes (admin only, every session audited):
 * - `GET /v1/vms/{name}/shell` upgrades to a WebSocket on a login shell as the notebook's user
 *   (or, with `command`, one command; `tty=0` runs it on pipes with stdout and stderr apart).
 *   `session=<id>` attaches again to a live session of the same token and replays its last
 *   64 KiB of output. The process is started before the upgrade, so every refusal (role, VM,
 *   agent offline, session cap, the agent failing to start it) is an ordinary HTTP error.
 * - `GET /v1/terminal-sessions`: the audit log, newest first.
 * With several replicas, a VM whose agent another replica holds is served by that replica
 * through the stream relay (cluster/relay), which opens and reattaches its sessions there.
 * Revoking the token or console session a client attached with ends that client (4014).
 */
import type {} from "@fastify/websocket";
import { TerminalCloseCode, TerminalSessionView } from "@nbfleet/shared";
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type WebSocket from "ws";
import {
  type PrincipalStreams,
  type Revocation,
  type StreamOwner,
  type TrackedStream,
  revocationError,
} from "../../auth/principal-streams.js";
import { NbfError } from "../../errors.js";
import { closeWithin } from "../../gateway/socket-close.js";
import type { TokenRecord } from "../../store/tokens-repo.js";
import { controlMessage } from "../../terminal/client-frames.js";
import type { TerminalService } from "../../terminal/terminal-service.js";
import type { TerminalSession } from "../../terminal/terminal-session.js";
import { Errors, NameParams, VmName } from "../schemas.js";

const Flag = Type.Union([Type.Literal("1"), Type.Literal("0"), Type.Literal("true"), Type.Literal("false")]);

export const ShellQuery = Type.Object(
  {
    cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 80 })),
    rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 24 })),
    session: Type.Optional(
      Type.String({ pattern: "^trm_[a-z0-9]{22}$", description: "attach again to this live session" }),
    ),
    command: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 8192,
        description: "run this with the user's shell (-c) instead",
      }),
    ),
    tty: Type.Optional(Flag),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object(
  {
    vm: Type.Optional(VmName),
    before: Type.Optional(Type.String({ maxLength: 64, description: "a session id from the previous page" })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
);

export const terminalPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { terminals, relay, streams } = app.nbfleet;
  const ready = new WeakMap<FastifyRequest, (PreparedShell | { upstream: WebSocket }) & Tracked>();
  destroyRefusedUpgrades(app);

  app.get(
    "/v1/vms/:name/shell",
    {
      websocket: true,
      config: { role: "admin" },
      schema: { params: NameParams, querystring: ShellQuery },
      preHandler: async (request) => {
        const { name } = request.params;
        if (!request.ws) throw new NbfError("NBF_WEBSOCKET_REQUIRED", { url: `/v1/vms/${name}/shell` });
        const tracked = trackShell(streams, request);
        const peer = await relay.peerFor(name);
        if (peer) {
          ready.set(request, { upstream: await relay.openShell(peer, request), tracked });
          return;
        }
        const prepared = await prepareShell(terminals, name, request.query, request.principal!);
        ready.set(request, { ...prepared, tracked });
      },
    },
    (socket: WebSocket, request) => {
      const prepared = ready.get(request)!;
      if ("upstream" in prepared) relay.pipeShell(socket, prepared.upstream);
      else terminals.attach(prepared.session, socket, prepared.size);
      prepared.tracked.endWith((revoked) => endRevokedClient(socket, revoked));
    },
  );

  app.get(
    "/v1/terminal-sessions",
    {
      config: { role: "admin" },
      schema: {
        tags: ["terminal"],
        summary: "The terminal audit log: every shell and exec session, newest first",
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(TerminalSessionView) }), ...Errors },
      },
    },
    async (request) => {
      const { vm, before, limit = 50 } = request.query;
      return { items: await terminals.list({ vmName: vm, before, limit }) };
    },
  );
};

export interface Tracked {
  tracked: TrackedStream;
}

/**
 * Registers a shell request's stream under its token and console session from before the
 * session opens (a revocation meanwhile ends the client as soon as it is attached) until its
 * socket closes, refused or not. One revoked just before is refused here.
 */
export function trackShell(
  streams: PrincipalStreams,
  request: StreamOwner & { raw: FastifyRequest["raw"] },
): TrackedStream {
  const tracked = streams.track(request);
  request.raw.socket.once("close", () => tracked.release());
  tracked.refuseIfRevoked();
  return tracked;
}

/**
 * Ends a client whose token or console session was revoked: only the client, as when it goes
 * away, so the session goes on detached until its timeout. A revoked token cannot attach
 * again (the attach authenticates); after a sign-out the token's owner still may.
 */
export function endRevokedClient(socket: WebSocket, revoked: Revocation): void {
  if (socket.readyState === socket.OPEN) {
    socket.send(controlMessage({ type: "error", ...revocationError(revoked) }));
  }
  closeWithin(socket, TerminalCloseCode.ended, `${revoked.kind} revoked`);
}

export interface PreparedShell {
  session: TerminalSession;
  size: { cols: number; rows: number };
}

/** The session a shell request asks for, opened (or found again) before the upgrade. */
export async function prepareShell(
  terminals: TerminalService,
  name: string,
  query: Static<typeof ShellQuery>,
  principal: TokenRecord,
): Promise<PreparedShell> {
  const { cols = 80, rows = 24, session: sessionId, command, tty } = query;
  const size = { cols, rows };
  const session = sessionId
    ? terminals.find(sessionId, name, principal)
    : await terminals.open({
        vmName: name,
        principal,
        command: command ?? null,
        tty: tty === undefined ? command === undefined : tty === "1" || tty === "true",
        ...size,
      });
  return { session, size };
}

/**
 * An upgrade refused with an HTTP error (role, VM, agent...) leaves a socket nobody owns: the
 * auth hook runs before @fastify/websocket marks the request, so its own cleanup is skipped.
 */
export function destroyRefusedUpgrades(app: FastifyInstance): void {
  app.addHook("onResponse", async (request, reply) => {
    if (request.headers.upgrade?.toLowerCase() === "websocket" && reply.statusCode >= 400) {
      request.raw.socket?.destroy();
    }
  });
}
