/**
 * A provider for tests and benchmarks whose "machines" are simulated agents in this process:
 * `create` starts a SimAgent with the bootstrap token, so everything after that runs over the
 * real protocol. Not for production: nothing is isolated and nothing survives the process.
 */
import type { Provider, ProviderVm, ProvisionContext, ProvisionResult } from "@nbfleet/controller";
import { SimAgent, type SimAgentOptions } from "./sim-agent.js";

export class SimProvider implements Provider {
  readonly name = "sim";
  readonly agents = new Map<string, SimAgent>();
  readonly calls: Array<{ action: string; vm: string }> = [];
  /** When set, the next call of this action throws this message. */
  failNext: { action: string; message: string } | null = null;
  private readonly connecting = new Map<string, Promise<unknown>>();

  constructor(private readonly agentOptions: Partial<SimAgentOptions> = {}) {}

  async create(vm: ProviderVm, context: ProvisionContext): Promise<ProvisionResult> {
    this.record("create", vm);
    const agent = new SimAgent({
      reconnect: { minMs: 20, maxMs: 500 },
      ...this.agentOptions,
      url: context.controllerUrl,
      token: context.bootstrapToken,
      hostname: vm.name,
    });
    this.agents.set(vm.name, agent);
    this.connecting.set(
      vm.name,
      agent.connect().catch((error) => error),
    );
    return { notebookUrl: `https://127.0.0.1:${agent.port}/`, providerData: { hostname: vm.name } };
  }

  async start(vm: ProviderVm): Promise<void> {
    this.record("start", vm);
    const agent = this.agent(vm);
    if (!agent.connected) await agent.connect();
  }

  async stop(vm: ProviderVm): Promise<void> {
    this.record("stop", vm);
    this.agent(vm).close();
  }

  async restart(vm: ProviderVm): Promise<void> {
    this.record("restart", vm);
    const agent = this.agent(vm);
    agent.close();
    await agent.connect();
  }

  async delete(vm: ProviderVm): Promise<void> {
    this.record("delete", vm);
    this.agents.get(vm.name)?.terminate();
    this.agents.delete(vm.name);
  }

  async close(): Promise<void> {
    for (const agent of this.agents.values()) agent.terminate();
  }

  /** Resolves when the VM's agent has been welcomed the first time. */
  async connected(name: string): Promise<SimAgent> {
    const result = await this.connecting.get(name);
    if (result instanceof Error) throw result;
    return this.agent({ name });
  }

  agent(vm: { name: string }): SimAgent {
    const agent = this.agents.get(vm.name);
    if (!agent) throw new Error(`no simulated agent for VM ${vm.name}`);
    return agent;
  }

  private record(action: string, vm: ProviderVm): void {
    this.calls.push({ action, vm: vm.name });
    if (this.failNext?.action === action) {
      const { message } = this.failNext;
      this.failNext = null;
      throw new Error(message);
    }
  }
}
