/**
 * Log streams from agents: `logs.open` asks an agent for the last lines of the notebook's (or
 * its own) log and, when following, every new line; `logs.data` batches come back until a
 * `logs.end`, a `logs.close` from here, or the end of the agent's connection. Following is the
 * agent's job (across notebook restarts and log capping); this side only routes.
 */
import {
  type AgentStreamMessage,
  CAPABILITY_LOGS_FOLLOW,
  type CommandError,
  type LogSource,
  PROTOCOL_VERSION,
} from "@nbfleet/shared";
import { NbfError } from "../errors.js";
import type { AgentGateway, StreamSink } from "../gateway/gateway.js";
import { newId } from "../store/ids.js";
import type { Store } from "../store/store.js";

export interface LogSink {
  lines(lines: string[]): void;
  /** The stream is over: everything sent (no error), or why not. */
  end(error?: CommandError): void;
}

export interface LogRequest {
  vmName: string;
  source: LogSource;
  lines: number;
  follow: boolean;
}

export interface LogStream {
  readonly id: string;
  close(): void;
}

interface Entry {
  vmName: string;
  sink: LogSink;
}

export class LogStreamService implements StreamSink {
  private readonly streams = new Map<string, Entry>();
  private readonly unsubscribe: () => void;

  constructor(private readonly options: { store: Store; gateway: AgentGateway }) {
    this.unsubscribe = options.gateway.onStreams(this);
  }

  get openCount(): number {
    return this.streams.size;
  }

  /** Checks the VM and its agent, then asks the agent; lines arrive at `sink`. */
  async open(request: LogRequest, sink: LogSink): Promise<LogStream> {
    const { store, gateway } = this.options;
    const vm = await store.vms.require(request.vmName);
    const capabilities = gateway.capabilities(request.vmName);
    if (!capabilities) {
      throw new NbfError("NBF_AGENT_NOT_CONNECTED", {
        name: request.vmName,
        lastSeenAt: vm.status.lastSeenAt ?? "never",
        what: "reading its logs",
      });
    }
    if (!capabilities.includes(CAPABILITY_LOGS_FOLLOW)) {
      throw new NbfError("NBF_AGENT_UNSUPPORTED", {
        name: request.vmName,
        capability: "log streams (logs.follow)",
        offered: capabilities.join(", ") || "nothing",
      });
    }
    const id = newId("log");
    this.streams.set(id, { vmName: request.vmName, sink });
    const sent = gateway.sendStream(request.vmName, {
      v: PROTOCOL_VERSION,
      id: newId("msg"),
      type: "logs.open",
      stream: id,
      source: request.source,
      lines: request.lines,
      follow: request.follow,
    });
    if (!sent) this.finish(id, gone(request.vmName, "the agent disconnected"));
    return {
      id,
      close: () => {
        if (!this.streams.delete(id)) return;
        gateway.sendStream(request.vmName, {
          v: PROTOCOL_VERSION,
          id: newId("msg"),
          type: "logs.close",
          stream: id,
        });
      },
    };
  }

  onAgentMessage(vmName: string, message: AgentStreamMessage): void {
    if (message.type !== "logs.data" && message.type !== "logs.end") return;
    const entry = this.streams.get(message.stream);
    if (!entry || entry.vmName !== vmName) return;
    if (message.type === "logs.data") entry.sink.lines(message.lines);
    else this.finish(message.stream, message.error);
  }

  onAgentGone(vmName: string, reason: string): void {
    for (const [id, entry] of [...this.streams]) {
      if (entry.vmName === vmName) this.finish(id, gone(vmName, reason));
    }
  }

  close(): void {
    this.unsubscribe();
    for (const id of [...this.streams.keys()]) {
      this.finish(id, { code: "NBF_CONTROLLER_STOPPING", message: "the controller is shutting down" });
    }
  }

  private finish(id: string, error?: CommandError): void {
    const entry = this.streams.get(id);
    if (!entry) return;
    this.streams.delete(id);
    entry.sink.end(error);
  }
}

function gone(vmName: string, reason: string): CommandError {
  return { code: "NBF_AGENT_NOT_CONNECTED", message: `${reason}; the log stream of VM ${vmName} ended` };
}
