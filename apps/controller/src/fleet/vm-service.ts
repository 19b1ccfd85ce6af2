/**
 * What can be done to a VM, for the API today and the CLI / bulk operations next: create
 * (password, bootstrap token, provider), machine start/stop/restart, delete (nothing left
 * behind: provider, agent link, secrets, pending commands) and notebook commands.
 */
import type { CommandName, VmCertificateRequest, VmState } from "@nbfleet/shared";
import type { FastifyBaseLogger } from "fastify";
import type { Signals } from "../cluster/signals.js";
import type { CommandService, EnqueueResult } from "../commands/service.js";
import type { GuestAcmeSettings } from "../config/acme-settings.js";
import { NbfError } from "../errors.js";
import type { EventBus } from "../events/bus.js";
import type { AgentGateway } from "../gateway/gateway.js";
import type { Provider, ProviderVm, ProvisionResult } from "../providers/types.js";
import type { Store } from "../store/store.js";
import type { VmRecord } from "../store/vms-repo.js";
import { issueBootstrapToken } from "./bootstrap-token.js";
import { generatePassword, hashNotebookPassword } from "./password.js";
import { guestCertificate, resolveVmCertificate } from "./vm-certificate.js";

/** The password.set of a new VM waits at least this long for an agent that is still installing. */
const CREATE_PASSWORD_TTL_SEC = 3600;

export interface VmServiceOptions {
  store: Store;
  bus: EventBus;
  commands: CommandService;
  gateway: AgentGateway;
  provider: Provider;
  controllerUrl: () => string;
  /** What new agents dial, in turn; null = `controllerUrl()` alone. */
  controllerUrls?: string[] | null;
  commandTtlSec: number;
  /** How long a new VM's bootstrap token stays valid unused. */
  bootstrapTokenTtlSec: number;
  log: FastifyBaseLogger;
  /** Tells the replica holding a deleted VM's agent to close its socket. */
  signals?: Signals;
  /** How guests get ACME certificates, and the fleet's default mode; absent: self-signed only. */
  acme?: GuestAcmeSettings;
}

export interface CreateVmInput {
  name: string;
  labels?: Record<string, string>;
  /** Taken as the notebook password; generated when absent. */
  password?: string;
  /** Must name this controller's provider when given. */
  provider?: string;
  /** Absent: the fleet default (NBFLEET_CERTIFICATE_MODE). */
  certificate?: VmCertificateRequest;
}

export interface CreatedVm {
  vm: VmRecord;
  /** The generated plaintext password, shown once; null when the caller gave one. */
  password: string | null;
  passwordCommand: EnqueueResult;
}

export type MachineAction = "start" | "stop" | "restart";
export type NotebookCommand = Extract<CommandName, "notebook.start" | "notebook.stop" | "notebook.restart">;

const TRANSITION: Record<MachineAction, { during: VmState; after: VmState }> = {
  start: { during: "starting", after: "running" },
  stop: { during: "stopping", after: "stopped" },
  restart: { during: "restarting", after: "running" },
};
const BUSY_STATES: VmState[] = ["provisioning", "deleting"];

export class VmService {
  constructor(private readonly options: VmServiceOptions) {}

  async create(input: CreateVmInput): Promise<CreatedVm> {
    const { store, bus, commands, provider } = this.options;
    if (input.provider !== undefined && input.provider !== provider.name) {
      throw new NbfError("NBF_PROVIDER_UNKNOWN", { provider: input.provider, available: provider.name });
    }
    const problem = provider.checkName?.(input.name) ?? null;
    if (problem) {
      throw new NbfError("NBF_PROVIDER_NAME_INVALID", {
        provider: provider.name,
        name: input.name,
        reason: problem,
      });
    }
    const labels = input.labels ?? {};
    const acme = this.options.acme;
    if (input.certificate?.mode === "acme" && !acme) {
      throw new NbfError("NBF_INVALID_BODY", {
        field: "certificate.mode",
        problems: "certificate.mode acme: this controller has no ACME settings",
      });
    }
    const certificate = resolveVmCertificate(
      input.certificate,
      acme?.defaultMode ?? "self-signed",
      provider,
      {
        name: input.name,
        labels,
        providerData: null,
      },
    );
    const guest = acme && guestCertificate(certificate, acme);
    const unsupported = guest ? (provider.checkCertificate?.(guest) ?? null) : null;
    if (unsupported) {
      throw new NbfError("NBF_PROVIDER_CERTIFICATE_UNSUPPORTED", {
        provider: provider.name,
        name: input.name,
        reason: unsupported,
      });
    }
    const plain = input.password ?? generatePassword();
    const passwordHash = await hashNotebookPassword(plain);
    await store.vms.insert({
      name: input.name,
      provider: provider.name,
      state: "provisioning",
      labels,
      passwordHash,
      certificate,
    });
    const { token: bootstrapToken } = await issueBootstrapToken(
      store.agentSecrets,
      input.name,
      this.options.bootstrapTokenTtlSec,
    );
    const passwordCommand = await commands.enqueue({
      vmName: input.name,
      name: "password.set",
      params: { hash: passwordHash },
      ttlSec: Math.max(this.options.commandTtlSec, CREATE_PASSWORD_TTL_SEC),
    });
    bus.emit({
      vmName: input.name,
      kind: "vm.created",
      message: `VM ${input.name} created on ${provider.name}`,
    });
    let result: ProvisionResult | undefined;
    try {
      result = await provider.create(
        { name: input.name, labels, providerData: null },
        {
          bootstrapToken,
          controllerUrl: this.options.controllerUrl(),
          ...(this.options.controllerUrls ? { controllerUrls: this.options.controllerUrls } : {}),
          passwordHash,
          ...(guest ? { certificate: guest } : {}),
        },
      );
    } catch (error) {
      const failed = { state: "failed", error: `create: ${errorReason(error)}` } as const;
      if (!(await store.vms.updateFrom(input.name, "provisioning", failed))) {
        await this.deletedWhileCreating(input.name, labels, null, error);
      }
      await this.providerFailed(input.name, "create", error, { recorded: true });
    }
    // Only from provisioning: a delete may have begun meanwhile (here or on another replica),
    // with no providerData to go on; what was just made is then this create's to delete.
    const recorded = await store.vms.updateFrom(input.name, "provisioning", {
      state: "running",
      notebookUrl: result?.notebookUrl ?? null,
      ...(result?.providerData !== undefined ? { providerData: result.providerData } : {}),
    });
    if (!recorded) await this.deletedWhileCreating(input.name, labels, result?.providerData ?? null);
    return {
      vm: await store.vms.require(input.name),
      password: input.password === undefined ? plain : null,
      passwordCommand,
    };
  }

  async machineAction(name: string, action: MachineAction): Promise<VmRecord> {
    const { store, provider, bus } = this.options;
    const vm = await store.vms.require(name);
    if (BUSY_STATES.includes(vm.state)) throw new NbfError("NBF_VM_BUSY", { name, state: vm.state, action });
    const { during, after } = TRANSITION[action];
    await store.vms.update(name, { state: during, error: null });
    try {
      await provider[action](providerVm(vm));
    } catch (error) {
      await this.providerFailed(name, action, error);
    }
    await store.vms.update(name, { state: after });
    bus.emit({
      vmName: name,
      kind: `vm.${action}`,
      message: `VM ${name} ${action === "stop" ? "stopped" : `${action}ed`}`,
    });
    return store.vms.require(name);
  }

  async delete(name: string): Promise<void> {
    const { store, provider, gateway, commands, bus } = this.options;
    const vm = await store.vms.require(name);
    if (vm.state === "deleting")
      throw new NbfError("NBF_VM_BUSY", { name, state: vm.state, action: "delete" });
    await store.vms.update(name, { state: "deleting" });
    // Read again: a create that finished after the read above recorded what it made, and a
    // create finishing from now on sees `deleting` and deletes what it made itself.
    const marked = (await store.vms.get(name)) ?? vm;
    try {
      await provider.delete(providerVm(marked));
    } catch (error) {
      await this.providerFailed(name, "delete", error);
    }
    gateway.retire(name, "VM deleted");
    this.options.signals?.send("vm.retired", [name]);
    store.writer.forget(name);
    await commands.dropForVm(name);
    await store.vms.delete(name);
    bus.emit({ vmName: name, kind: "vm.deleted", message: `VM ${name} deleted` });
  }

  async notebookCommand(
    name: string,
    command: NotebookCommand,
    options: { ttlSec?: number; timeoutSec?: number; ifOffline?: "queue" | "fail" } = {},
  ): Promise<EnqueueResult> {
    await this.options.store.vms.require(name);
    return this.options.commands.enqueue({ vmName: name, name: command, ...options });
  }

  /** A new self-signed certificate made on the guest (the private key never travels). */
  async rotateCertificate(
    name: string,
    params: { hostnames?: string[]; ips?: string[] },
    options: { ttlSec?: number; timeoutSec?: number; ifOffline?: "queue" | "fail" } = {},
  ): Promise<EnqueueResult> {
    await this.options.store.vms.require(name);
    return this.options.commands.enqueue({ vmName: name, name: "certificate.rotate", params, ...options });
  }

  /** Stores the new hash and sends it; returns the generated plaintext (null when given). */
  async setPassword(
    name: string,
    password: string | undefined,
    options: { ttlSec?: number; timeoutSec?: number; ifOffline?: "queue" | "fail" } = {},
  ): Promise<{ command: EnqueueResult; password: string | null }> {
    const { store, commands } = this.options;
    await store.vms.require(name);
    const plain = password ?? generatePassword();
    const hash = await hashNotebookPassword(plain);
    const command = await commands.enqueue({
      vmName: name,
      name: "password.set",
      params: { hash },
      ...options,
    });
    await store.vms.setPasswordHash(name, hash);
    return { command, password: password === undefined ? plain : null };
  }

  /**
   * Ends a create whose VM was deleted (or began to be) while the provider made it: deletes what
   * the provider made, records nothing, and tells the caller. `createError`: the create failed
   * too, so the provider may have left part of the machine (providerData is null then).
   */
  private async deletedWhileCreating(
    name: string,
    labels: Record<string, string>,
    providerData: unknown,
    createError?: unknown,
  ): Promise<never> {
    const { store, provider, log } = this.options;
    const state = (await store.vms.get(name))?.state ?? "deleted";
    log.warn(
      { vm: name, state, ...(createError === undefined ? {} : { err: createError }) },
      "VM deleted while being created; deleting what the provider made",
    );
    try {
      await provider.delete({ name, labels, providerData });
    } catch (error) {
      const reason = `${errorReason(error)}; VM ${name} was deleted while being created, and what the provider made for it may be left (the reconciler reports it as orphans)`;
      log.error({ err: error, vm: name }, "provider failed to delete a machine deleted while being created");
      throw new NbfError("NBF_PROVIDER_FAILED", { provider: provider.name, action: "delete", name, reason });
    }
    throw new NbfError("NBF_VM_BUSY", { name, state, action: "create" });
  }

  /** `recorded`: the VM is marked failed already. */
  private async providerFailed(
    name: string,
    action: string,
    error: unknown,
    { recorded = false } = {},
  ): Promise<never> {
    const reason = errorReason(error);
    this.options.log.error({ err: error, vm: name, action }, "provider failed");
    if (!recorded) {
      await this.options.store.vms.update(name, { state: "failed", error: `${action}: ${reason}` });
    }
    this.options.bus.emit({
      vmName: name,
      kind: "vm.failed",
      level: "error",
      message: `provider ${this.options.provider.name} failed to ${action} VM ${name}: ${reason}`,
    });
    throw new NbfError("NBF_PROVIDER_FAILED", { provider: this.options.provider.name, action, name, reason });
  }
}

function errorReason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function providerVm(vm: VmRecord): ProviderVm {
  return { name: vm.name, labels: vm.labels, providerData: vm.providerData };
}
