/**
 * For terminal and log tests: a real controller and a real agent link to it — the agent's own
 * ControllerLink and AgentStreams (real node-pty, real log files) around a fake core, so no
 * Jupyter is needed — plus a recording terminal client that tests wait on.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { AgentStreams, type AgentStreamsOptions } from "@nbfleet/agent";
import { type ControllerSettings, TerminalConnection, type TerminalOpenOptions } from "@nbfleet/controller";
import type { TerminalServerFrame, VmView } from "@nbfleet/shared";
import { type TestController, startTestController } from "./controller.js";
import { makeDataDir } from "./data-dir.js";
import { FakeCore } from "./fake-core.js";
import { HandOverProvider } from "./hand-over-provider.js";
import { call } from "./http.js";
import { type LinkHarness, startLink } from "./link-harness.js";
import { type RawAgent, openRaw, rawHello } from "./raw-agent.js";
import { testShellTarget } from "./shell-target.js";
import { eventually } from "./wait.js";
import { Waiters } from "./waiters.js";

export interface Fleet {
  controller: TestController;
  provider: HandOverProvider;
  logDir: string;
  agents: Map<string, { link: LinkHarness; streams: AgentStreams }>;
  /** Creates a VM and connects a real agent link for it. */
  addVm(
    name: string,
    streams?: Partial<AgentStreamsOptions> | null,
  ): Promise<{ link: LinkHarness; streams: AgentStreams }>;
  /** Creates a VM whose agent is a raw connection the test speaks for, welcomed with `capabilities`. */
  addRawVm(name: string, capabilities: string[]): Promise<RawAgent>;
  /** A token of the given role (admin tokens other than the first too). */
  token(role: "viewer" | "operator" | "admin", name?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startFleet(settings: Partial<ControllerSettings> = {}): Promise<Fleet> {
  const provider = new HandOverProvider();
  const controller = await startTestController({ provider, settings: { pingIntervalSec: 1, ...settings } });
  const logDir = makeDataDir("nbf-terminal-logs-");
  const agents = new Map<string, { link: LinkHarness; streams: AgentStreams }>();
  const raws: RawAgent[] = [];
  const createVm = async (name: string) => {
    const created = await call(controller.app, "POST", "/v1/vms", {
      token: controller.adminToken,
      body: { name, password: "a-long-password" },
    });
    if (created.statusCode !== 201) throw new Error(`creating ${name}: ${created.body}`);
    return provider.contexts.get(name)!;
  };
  const fleet: Fleet = {
    controller,
    provider,
    logDir,
    agents,
    async addVm(name, streamOptions = {}) {
      const context = await createVm(name);
      const shellTarget = testShellTarget();
      const streams = new AgentStreams({
        target: () => shellTarget,
        logFile: (source) => path.join(logDir, `${name}-${source}.log`),
        logPollMs: 20,
        killGraceMs: 300,
        ...streamOptions,
      });
      const link = startLink({
        url: context.controllerUrl,
        core: new FakeCore(),
        bootstrapToken: context.bootstrapToken,
        ...(streamOptions === null ? {} : { streams }),
        timing: { pingIntervalMs: 1000 },
      });
      await eventually(
        async () =>
          (
            await call(controller.app, "GET", `/v1/vms/${name}`, { token: controller.adminToken })
          ).json() as VmView,
        (vm) => vm.agent.status === "connected",
      );
      const agent = { link, streams };
      agents.set(name, agent);
      return agent;
    },
    async addRawVm(name, capabilities) {
      const context = await createVm(name);
      const raw = openRaw(context.controllerUrl, context.bootstrapToken);
      raws.push(raw);
      await raw.opened;
      raw.ws.send(rawHello({ capabilities }));
      await eventually(
        async () => raw.messages.some((m) => (m as { type?: string }).type === "welcome"),
        (welcomed) => welcomed,
      );
      return raw;
    },
    async token(role, name = `${role}-token`) {
      const res = await call(controller.app, "POST", "/v1/tokens", {
        token: controller.adminToken,
        body: { name, role },
      });
      return (res.json() as { token: string }).token;
    },
    async close() {
      for (const raw of raws) raw.ws.terminate();
      for (const { link, streams } of agents.values()) {
        await link.stop();
        streams.disconnected();
      }
      await controller.close();
      await rm(logDir, { recursive: true, force: true });
    },
  };
  return fleet;
}

/** A terminal client that records everything it is sent. */
export class RecordedTerminal {
  readonly frames: TerminalServerFrame[] = [];
  readonly chunks: Array<{ channel: "stdout" | "stderr"; data: Buffer }> = [];
  closed: { code: number; reason: string } | null = null;
  connection!: TerminalConnection;
  private readonly waiters = new Waiters();

  static async open(options: TerminalOpenOptions): Promise<RecordedTerminal> {
    const recorded = new RecordedTerminal();
    recorded.connection = await TerminalConnection.open(options, {
      output: (channel, data) => {
        recorded.chunks.push({ channel, data });
        recorded.waiters.notify();
      },
      control: (frame) => {
        recorded.frames.push(frame);
        recorded.waiters.notify();
      },
      closed: (code, reason) => {
        recorded.closed = { code, reason };
        recorded.waiters.notify();
      },
    });
    return recorded;
  }

  get session(): string {
    return this.connection.session.session;
  }

  text(channel?: "stdout" | "stderr"): string {
    return Buffer.concat(
      this.chunks.filter((c) => !channel || c.channel === channel).map((c) => c.data),
    ).toString("utf8");
  }

  /** Resolves once the output from character `from` on matches. */
  waitText(match: RegExp, options: { from?: number; timeoutMs?: number } = {}): Promise<string> {
    return this.waiters.until(
      () => {
        const text = this.text().slice(options.from ?? 0);
        return match.test(text) ? text : undefined;
      },
      `terminal output matching ${match}`,
      options.timeoutMs,
    );
  }

  waitClosed(timeoutMs?: number): Promise<{ code: number; reason: string }> {
    return this.waiters.until(() => this.closed, "the terminal to close", timeoutMs);
  }

  waitFrame<T extends TerminalServerFrame["type"]>(
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<TerminalServerFrame, { type: T }>> {
    return this.waiters.until(
      () => this.frames.find((f): f is Extract<TerminalServerFrame, { type: T }> => f.type === type),
      `a ${type} frame`,
      timeoutMs,
    );
  }
}
