/**
 * A provider whose machines are the test itself: `create` records the bootstrap context
 * (controller URL, bootstrap token) so the test can start an agent link with it.
 */
import type { Provider, ProviderVm, ProvisionContext } from "@nbfleet/controller";

export class HandOverProvider implements Provider {
  readonly name = "hand-over";
  readonly contexts = new Map<string, ProvisionContext>();
  async create(vm: ProviderVm, context: ProvisionContext) {
    this.contexts.set(vm.name, context);
    return { notebookUrl: null };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async restart(): Promise<void> {}
  async delete(): Promise<void> {}
}
