/**
 * A kernel's `/channels` WebSocket spoken in Jupyter messaging protocol v5 (the JSON framing
 * notebook 6 and jupyter_server use by default): send a shell request, gather everything the
 * kernel says about it on iopub, finish when both the shell reply and the iopub `idle` arrived
 * (their order is not fixed).
 */
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { notebookConnection } from "./http.js";
import type { CheckTarget } from "./target.js";

export const PROTOCOL_VERSION = "5.3";

export interface JupyterMessage {
  header: { msg_id: string; msg_type: string; [key: string]: unknown };
  parent_header: { msg_id?: string; [key: string]: unknown };
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
  channel?: string;
  buffers?: unknown[];
}

export interface RequestOutcome {
  reply: JupyterMessage;
  stdout: string;
  stderr: string;
  /** Decoded `image/png` payloads of display_data / execute_result, in order. */
  images: Buffer[];
  /** `ename: evalue` of an error message or an error reply, else null. */
  error: string | null;
}

interface Pending {
  outcome: Omit<RequestOutcome, "reply"> & { reply: JupyterMessage | null };
  idle: boolean;
  waitForIdle: boolean;
  resolve: (outcome: RequestOutcome) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class KernelChannel {
  private readonly session = randomUUID();
  private readonly pending = new Map<string, Pending>();
  private closedReason: string | null = null;

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (raw, isBinary) => {
      // Binary frames carry comm buffers, which no request of ours produces.
      if (!isBinary) this.dispatch(raw.toString());
    });
    ws.on("close", (code, reason) =>
      this.failAll(`kernel channels closed (${code} ${reason.toString()})`.trim()),
    );
    ws.on("error", (error) => this.failAll(`kernel channels failed: ${error.message}`));
  }

  /** Opens the channels over TLS pinned to the profile's certificate (`pinTo.certFile`). */
  static async open(
    url: URL,
    token: string,
    timeoutMs: number,
    pinTo: Pick<CheckTarget, "certFile">,
  ): Promise<KernelChannel> {
    const createConnection = await notebookConnection(pinTo, timeoutMs);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        headers: { Authorization: `token ${token}` },
        createConnection: createConnection as unknown as WebSocket.ClientOptions["createConnection"],
        handshakeTimeout: timeoutMs,
      });
      const fail = (message: string) => {
        ws.terminate();
        reject(new Error(`cannot open ${url.pathname}: ${message}`));
      };
      ws.once("unexpected-response", (_req, res) => fail(`HTTP ${res.statusCode}`));
      ws.once("error", (error) => fail(error.message));
      ws.once("open", () => {
        ws.removeAllListeners("unexpected-response");
        ws.removeAllListeners("error");
        resolve(new KernelChannel(ws));
      });
    });
  }

  /** Sends a shell request and waits for its reply (and, for executions, the iopub idle). */
  request(msgType: string, content: Record<string, unknown>, timeoutMs: number): Promise<RequestOutcome> {
    if (this.closedReason !== null) return Promise.reject(new Error(this.closedReason));
    const msgId = randomUUID();
    const message: JupyterMessage & { channel: string } = {
      header: {
        msg_id: msgId,
        msg_type: msgType,
        username: "nbfleet",
        session: this.session,
        date: new Date().toISOString(),
        version: PROTOCOL_VERSION,
      },
      parent_header: {},
      metadata: {},
      content,
      channel: "shell",
      buffers: [],
    };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(msgId);
        reject(new Error(`${msgType} got no complete answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(msgId, {
        outcome: { reply: null, stdout: "", stderr: "", images: [], error: null },
        idle: false,
        waitForIdle: msgType === "execute_request",
        resolve,
        reject,
        timer,
      });
      this.ws.send(JSON.stringify(message));
    });
  }

  execute(code: string, timeoutMs: number): Promise<RequestOutcome> {
    return this.request(
      "execute_request",
      {
        code,
        silent: false,
        store_history: false,
        user_expressions: {},
        allow_stdin: false,
        stop_on_error: true,
      },
      timeoutMs,
    );
  }

  close(): void {
    this.failAll("kernel channels closed by the agent");
    this.ws.close();
  }

  private dispatch(text: string): void {
    let message: JupyterMessage;
    try {
      message = JSON.parse(text) as JupyterMessage;
    } catch {
      return;
    }
    const type = message.header?.msg_type;
    const content = message.content ?? {};
    if (
      type === "status" &&
      (content.execution_state === "dead" || content.execution_state === "restarting")
    ) {
      this.failAll(`the kernel is ${content.execution_state}`);
      return;
    }
    const parentId = message.parent_header?.msg_id;
    const pending = parentId === undefined ? undefined : this.pending.get(parentId);
    if (pending === undefined || parentId === undefined) return;
    const { outcome } = pending;

    if (type === "stream" && typeof content.text === "string") {
      if (content.name === "stderr") outcome.stderr += content.text;
      else outcome.stdout += content.text;
    } else if (type === "display_data" || type === "execute_result") {
      const png = (content.data as Record<string, unknown> | undefined)?.["image/png"];
      if (typeof png === "string") outcome.images.push(Buffer.from(png, "base64"));
    } else if (type === "error") {
      outcome.error = `${String(content.ename)}: ${String(content.evalue)}`;
    } else if (type === "status" && content.execution_state === "idle") {
      pending.idle = true;
    } else if (message.channel === "shell" || type?.endsWith("_reply")) {
      outcome.reply = message;
      if (content.status === "error" && outcome.error === null) {
        outcome.error = `${String(content.ename)}: ${String(content.evalue)}`;
      }
    }

    if (outcome.reply !== null && (pending.idle || !pending.waitForIdle)) {
      clearTimeout(pending.timer);
      this.pending.delete(parentId);
      pending.resolve({ ...outcome, reply: outcome.reply });
    }
  }

  private failAll(reason: string): void {
    this.closedReason ??= reason;
    for (const [msgId, pending] of this.pending) {
      clearTimeout(pending.timer);
      this.pending.delete(msgId);
      pending.reject(new Error(reason));
    }
  }
}
