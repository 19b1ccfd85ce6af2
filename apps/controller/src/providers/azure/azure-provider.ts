import {
  type GuestCertificate as BootstrapCertificate,
  type ControllerTrust,
  customDataBase64,
  renderCloudInit,
  renderWindowsBootstrap,
  trustSettings,
} from "@nbfleet/scripts";
/**
 * Provider `azure`: each machine is an Azure VM made through the real Azure SDK
 * (@azure/arm-resources, -network, -compute), booted by cloud-init user-data (Linux) or a
 * CustomScriptExtension running the PowerShell bootstrap (Windows) from @nbfleet/scripts.
 *
 *   fleet (once):  resource group ─ NSG (public notebook port only) ─ VNet/subnet
 *   per machine:   public IP (Standard, static, DNS label) ─ NIC ─ VM (+ extension on Windows)
 *
 * Names are checked against Azure's rules and customData against its 64 KB limit before any
 * call. Provisioning concurrency is bounded (default 10 in flight); 429 and 5xx are retried by
 * the SDK honouring Retry-After. Every call has deadlines: each HTTP attempt `requestTimeoutMs`
 * (then retried), each machine operation with its polls `operationTimeoutMs` (then abandoned,
 * failing the machine and freeing its slot). A create that fails part-way (or runs out of time)
 * deletes what it made, so no NIC, IP or disk is left behind; the error carries Azure's code and
 * message.
 *
 * ACME: a machine's certificate is for its public name (`publicHostname`) unless the request
 * named another; HTTP-01 only (see acme.ts), the NSG admitting TCP 80 while any machine uses it.
 */
import { AGENT_ARTIFACT_PATH as ARTIFACT_PATH, type VmState } from "@nbfleet/shared";
import pLimit, { type LimitFunction } from "p-limit";
import { type ArtifactInfo, artifactVersionSettings } from "../../artifact-info.js";
import type {
  GuestCertificate,
  Provider,
  ProviderVm,
  ProvisionContext,
  ProvisionResult,
  ReconcileReport,
} from "../types.js";
import { ACME_TAG, azureAcmeProblem, azureFqdn, bootstrapCertificateOn } from "./acme.js";
import {
  type AzureClients,
  type CallCounters,
  DEFAULT_RETRY,
  type RetrySettings,
  makeClients,
} from "./clients.js";
import { type CredentialChoice, credentialProblem } from "./credential.js";
import { describeAzureFailure, isAuthFailure, isNotFound } from "./failures.js";
import { FLEET_TAG, FleetNetwork, type TeardownReport, VM_TAG } from "./fleet-network.js";
import { type GuestOs, type VmResourceNames, azureNameProblem, fleetId, vmResourceNames } from "./names.js";
import { powerStateOf, vmStateFromInstanceView } from "./power-state.js";
import { type ImageName, nicBody, osOfImage, publicIpBody, vmBody, windowsExtensionBody } from "./vm-spec.js";

export interface AzureProviderOptions {
  subscriptionId: string;
  /** Azure region, e.g. `westeurope`. */
  location: string;
  resourceGroup: string;
  /** Value of the `nbfleet-fleet` tag; default: the resource group's name. */
  fleet?: string;
  artifact: ArtifactInfo;
  /** The release public key (SPKI PEM) guests verify upgrade artifacts with (artifacts/release-key.ts). */
  releasePublicKeyPem?: string;
  credential: CredentialChoice;
  /** Resource Manager endpoint (the emulator's); Azure's public cloud when null. */
  endpoint?: string | null;
  /** CA (PEM) trusted for `endpoint`. */
  caPem?: string | null;
  vmSize?: string;
  image?: ImageName;
  adminUsername?: string;
  /** OpenSSH public key for the admin user (Linux); none = no usable login. */
  sshPublicKey?: string | null;
  /** Who may reach the notebook port (default `*`). */
  notebookSourceRanges?: string[];
  /** Who may reach SSH; null (default) = no SSH rule at all. */
  sshSourceRanges?: string[] | null;
  publicPort?: number;
  notebookPort?: number;
  /** Machines created, started, stopped or deleted at the same time (default 10). */
  maxConcurrency?: number;
  /** How guests verify this controller's TLS certificate: its CA (PEM) or its SHA-256 fingerprint. */
  controllerTrust?: ControllerTrust;
  retry?: Partial<RetrySettings>;
  /** LRO poll interval when Azure sends no Retry-After (SDK default 2 s). */
  pollIntervalMs?: number;
  /** Longest a create, start, stop, restart, delete or read may take, polls included (default 30 min). */
  operationTimeoutMs?: number;
  /** Longest one HTTP attempt may wait for Azure's answer before it is retried (default 2 min). */
  requestTimeoutMs?: number;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export interface AzureProviderData {
  resourceGroup: string;
  location: string;
  os: GuestOs;
  fqdn: string;
  vmId: string | null;
  names: VmResourceNames;
  /** The port the agent answers ACME's HTTP-01 on (the NSG admits it); absent = no ACME. */
  acmeHttpPort?: number;
}

const DEFAULTS = {
  vmSize: "Standard_B2s",
  image: "ubuntu-24.04" as ImageName,
  adminUsername: "nbfleet",
  publicPort: 443,
  notebookPort: 9999,
  maxConcurrency: 10,
  operationTimeoutMs: 30 * 60_000,
  requestTimeoutMs: 2 * 60_000,
  /** A create that ran out of time still deletes what it made, within this much more. */
  cleanupTimeoutMs: 10 * 60_000,
};

export class AzureProvider implements Provider {
  readonly name = "azure";
  /** HTTP attempts made so far (each retry counts): attempts, writes, 429s, 5xx. */
  readonly counters: CallCounters = { attempts: 0, writes: 0, throttled: 0, serverErrors: 0 };
  readonly fleet: string;
  private readonly fleetId: string;
  private readonly network: FleetNetwork;
  private readonly limit: LimitFunction;
  private clientSet: AzureClients | null = null;
  /** Creates of HTTP-01 machines under way here (the NSG rule stays while any is). */
  private acmeCreates = 0;

  constructor(private readonly options: AzureProviderOptions) {
    this.fleet = options.fleet ?? options.resourceGroup;
    this.fleetId = fleetId(options.subscriptionId, options.resourceGroup);
    this.limit = pLimit(options.maxConcurrency ?? DEFAULTS.maxConcurrency);
    this.network = new FleetNetwork(() => this.clients, {
      operationTimeoutMs: this.operationTimeoutMs,
      resourceGroup: options.resourceGroup,
      location: options.location,
      fleet: this.fleet,
      publicPort: options.publicPort ?? DEFAULTS.publicPort,
      notebookSourceRanges: options.notebookSourceRanges ?? ["*"],
      sshSourceRanges: options.sshSourceRanges ?? null,
      addressSpace: "10.42.0.0/16",
      subnetPrefix: "10.42.0.0/20",
    });
  }

  private get clients(): AzureClients {
    this.clientSet ??= makeClients({
      subscriptionId: this.options.subscriptionId,
      credential: this.options.credential.credential,
      endpoint: this.options.endpoint ?? null,
      caPem: this.options.caPem ?? null,
      retry: { ...DEFAULT_RETRY, ...this.options.retry },
      requestTimeoutMs: this.options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      counters: this.counters,
    });
    return this.clientSet;
  }

  private get operationTimeoutMs(): number {
    return this.options.operationTimeoutMs ?? DEFAULTS.operationTimeoutMs;
  }

  private get cleanupTimeoutMs(): number {
    return Math.min(this.operationTimeoutMs, DEFAULTS.cleanupTimeoutMs);
  }

  private get os(): GuestOs {
    return osOfImage(this.options.image ?? DEFAULTS.image);
  }

  /** Why Azure would refuse a machine of this name (null = fine); checked before any call. */
  checkName(name: string): string | null {
    return azureNameProblem(name, this.os, this.fleetId);
  }

  /** Why an ACME setting cannot work on an Azure machine (null = fine); checked before anything is stored. */
  checkCertificate(certificate: GuestCertificate): string | null {
    return azureAcmeProblem(certificate, this.options.publicPort ?? DEFAULTS.publicPort);
  }

  /** `<dns label>.<region>.cloudapp.azure.com`, the public IP's name; null for a name Azure would refuse. */
  publicHostname(vm: Pick<ProviderVm, "name">): string | null {
    if (this.checkName(vm.name) !== null) return null;
    return azureFqdn(vmResourceNames(vm.name, this.fleetId).dnsLabel, this.options.location);
  }

  /** Makes the fleet's resource group, NSG and VNet if missing; returns the subnet id. */
  ensureFleet(): Promise<string> {
    return this.guard("prepare the fleet network", () => this.network.ensure());
  }

  /** Machines in flight (create/start/stop/restart/delete) and waiting for a slot. */
  get inFlight(): { active: number; pending: number } {
    return { active: this.limit.activeCount, pending: this.limit.pendingCount };
  }

  async create(vm: ProviderVm, context: ProvisionContext): Promise<ProvisionResult> {
    const problem = this.checkName(vm.name);
    if (problem) {
      throw new AzureProviderError(
        "check the name",
        `Azure would refuse the name ${JSON.stringify(vm.name)}: ${problem}`,
      );
    }
    const names = vmResourceNames(vm.name, this.fleetId);
    const fqdn = azureFqdn(names.dnsLabel, this.options.location);
    const publicPort = this.options.publicPort ?? DEFAULTS.publicPort;
    const certificate = context.certificate ? bootstrapCertificateOn(context.certificate, fqdn) : null;
    const acmeProblem = context.certificate ? this.checkCertificate(context.certificate) : null;
    if (acmeProblem) throw new AzureProviderError("check the certificate", acmeProblem);
    // What the NSG admits and the guest redirects to the notebook: the agent reports this URL,
    // on the name its certificate is for.
    const host = certificate?.hostname ?? fqdn;
    const notebookUrl = `https://${host}${publicPort === 443 ? "" : `:${publicPort}`}/`;
    // Rendered (and checked against Azure's 64 KB customData limit) before any Azure call.
    const customData = customDataBase64(this.userData(context, fqdn, notebookUrl, certificate));
    const acmeHttpPort = certificate?.challengePort;
    return this.limit(async () => {
      let counted = acmeHttpPort !== undefined;
      const uncount = () => {
        if (counted) this.acmeCreates -= 1;
        counted = false;
      };
      if (counted) this.acmeCreates += 1;
      try {
        return await this.guard(
          "create",
          async (signal) => {
            const subnetId = await abortable(this.network.ensure(), signal);
            if (acmeHttpPort !== undefined) {
              await abortable(this.network.admitAcmeHttp(acmeHttpPort, signal), signal);
            }
            const data = await this.provision(vm, names, fqdn, subnetId, customData, signal, acmeHttpPort);
            return { notebookUrl, providerData: data };
          },
          this.cleanupTimeoutMs,
        );
      } catch (error) {
        uncount();
        // The first ACME machine failed: port 80 closes again unless another one holds it.
        if (acmeHttpPort !== undefined) await this.withdrawAcmeHttpIfUnused();
        throw error;
      } finally {
        uncount();
      }
    });
  }

  private async provision(
    vm: ProviderVm,
    names: VmResourceNames,
    fqdn: string,
    subnetId: string,
    customData: string,
    signal: AbortSignal,
    acmeHttpPort: number | undefined,
  ): Promise<AzureProviderData> {
    const { network, compute } = this.clients;
    const { resourceGroup: rg, location } = this.options;
    const tags = { ...this.network.tags, [VM_TAG]: vm.name };
    const attempted = new Set<"ip" | "nic" | "vm">();
    const poll = this.callOptions(signal);
    try {
      attempted.add("ip");
      const ip = await network.publicIPAddresses.beginCreateOrUpdateAndWait(
        rg,
        names.publicIp,
        publicIpBody(location, names, tags),
        poll,
      );
      attempted.add("nic");
      const nic = await network.networkInterfaces.beginCreateOrUpdateAndWait(
        rg,
        names.nic,
        nicBody(location, subnetId, ip.id!, tags),
        poll,
      );
      attempted.add("vm");
      const created = await compute.virtualMachines.beginCreateOrUpdateAndWait(
        rg,
        names.vm,
        vmBody({
          location,
          names,
          // The VM answers HTTP-01: what keeps the NSG's port 80 open (withdrawAcmeHttpIfUnused).
          tags: acmeHttpPort === undefined ? tags : { ...tags, [ACME_TAG]: String(acmeHttpPort) },
          vmSize: this.options.vmSize ?? DEFAULTS.vmSize,
          image: this.options.image ?? DEFAULTS.image,
          adminUsername: this.options.adminUsername ?? DEFAULTS.adminUsername,
          sshPublicKey: this.options.sshPublicKey ?? null,
          customDataBase64: customData,
          nicId: nic.id!,
        }),
        poll,
      );
      if (this.os === "windows") {
        await compute.virtualMachineExtensions.beginCreateOrUpdateAndWait(
          rg,
          names.vm,
          names.extension,
          windowsExtensionBody(location, tags),
          poll,
        );
      }
      return {
        resourceGroup: rg,
        location,
        os: this.os,
        fqdn,
        vmId: created.id ?? null,
        names,
        ...(acmeHttpPort === undefined ? {} : { acmeHttpPort }),
      };
    } catch (error) {
      // Past the deadline the cleanup gets a deadline of its own.
      const cleanupSignal = AbortSignal.timeout(this.cleanupTimeoutMs);
      const cleanup = await this.removeAll(names, attempted, cleanupSignal).then(
        () => "what it had made was deleted",
        (cleanupError) =>
          `cleaning up also failed (${this.describe(cleanupError)}); look for resources tagged ${VM_TAG}=${vm.name}`,
      );
      this.options.log?.warn({ vm: vm.name, err: error }, "azure create failed; cleaned up");
      const why = signal.aborted ? this.timeoutMessage("create") : this.describe(error);
      throw new AzureProviderError("create", `${why}; ${cleanup}`, error, signal.aborted);
    }
  }

  async start(vm: ProviderVm): Promise<void> {
    await this.power("start", vm, async () => "beginStartAndWait");
  }

  /** Stop = deallocate: the VM keeps its disk and IP but is no longer billed for compute. */
  async stop(vm: ProviderVm): Promise<void> {
    await this.power("stop", vm, async () => "beginDeallocateAndWait");
  }

  /** Restarts a running VM; a deallocated one is started instead (Azure refuses to restart it). */
  async restart(vm: ProviderVm): Promise<void> {
    await this.power("restart", vm, async (data, signal) => {
      const view = await this.clients.compute.virtualMachines.instanceView(
        data.resourceGroup,
        data.names.vm,
        this.callOptions(signal),
      );
      const power = powerStateOf(view.statuses);
      return power === "running" || power === "starting" ? "beginRestartAndWait" : "beginStartAndWait";
    });
  }

  /** Deletes the VM (its OS disk, NIC and IP go with it) and anything of it still left. */
  async delete(vm: ProviderVm): Promise<void> {
    const names = isAzureData(vm.providerData)
      ? vm.providerData.names
      : vmResourceNames(vm.name, this.fleetId);
    if (!vm.providerData && this.checkName(vm.name) !== null) return;
    await this.limit(() =>
      this.guard("delete", (signal) => this.removeAll(names, new Set(["ip", "nic", "vm"]), signal)),
    );
    if (isAzureData(vm.providerData) && vm.providerData.acmeHttpPort !== undefined) {
      await this.withdrawAcmeHttpIfUnused();
    }
  }

  /**
   * Closes the NSG's HTTP-01 port when no machine of the fleet answers it any more: none being
   * created here, none tagged in Azure (which also sees those other controllers made).
   */
  private async withdrawAcmeHttpIfUnused(): Promise<void> {
    const fleet = this.fleet;
    const rg = this.options.resourceGroup;
    await this.guard("close the ACME port", (signal) =>
      this.network.withdrawAcmeHttp(signal, async () => {
        if (this.acmeCreates > 0) return true;
        const filter = `tagName eq '${ACME_TAG}'`;
        const call = { ...this.callOptions(signal), filter };
        for await (const r of this.clients.resources.resources.listByResourceGroup(rg, call)) {
          if (r.type?.toLowerCase() === "microsoft.compute/virtualmachines" && r.tags?.[FLEET_TAG] === fleet)
            return true;
        }
        return false;
      }),
    ).catch((error: unknown) => {
      // The machine is gone either way; an open port 80 with nothing behind it answers nobody.
      this.options.log?.warn({ err: error }, "azure: could not close the ACME HTTP-01 port");
    });
  }

  /** The machine's state as Azure reports it. */
  async state(vm: ProviderVm): Promise<VmState> {
    const data = providerData(vm);
    return this.guard("read", async (signal) => {
      const view = await this.clients.compute.virtualMachines.instanceView(
        data.resourceGroup,
        data.names.vm,
        this.callOptions(signal),
      );
      return vmStateFromInstanceView(view.statuses);
    });
  }

  /**
   * Compares what nbfleet knows with what Azure holds for this fleet (three reads): known
   * machines Azure no longer has, each machine's power state, and fleet-tagged resources (and
   * unattached `-osdisk` disks) that belong to no known machine. An ACME machine deleted outside
   * nbfleet no longer keeps the NSG's port 80 open: it is closed here when no other needs it.
   */
  async reconcile(known: ProviderVm[]): Promise<ReconcileReport> {
    const report = await this.compare(known);
    const gone = new Set(report.missing);
    const acmeGone = known.some(
      (vm) => gone.has(vm.name) && isAzureData(vm.providerData) && vm.providerData.acmeHttpPort !== undefined,
    );
    if (acmeGone) await this.withdrawAcmeHttpIfUnused();
    return report;
  }

  private compare(known: ProviderVm[]): Promise<ReconcileReport> {
    const { compute, resources } = this.clients;
    const rg = this.options.resourceGroup.toLowerCase();
    return this.guard("reconcile", async (signal) => {
      const call = this.callOptions(signal);
      const exists = await resources.resourceGroups.checkExistence(this.options.resourceGroup, call);
      const inAzure = new Map<string, VmState>();
      const orphans: ReconcileReport["orphans"] = [];
      const knownNames = new Set(known.map((vm) => vm.name.toLowerCase()));
      if (exists.body) {
        for await (const vm of compute.virtualMachines.listAll({ ...call, statusOnly: "true" })) {
          if (!vm.id?.toLowerCase().includes(`/resourcegroups/${rg}/`) || vm.tags?.[FLEET_TAG] !== this.fleet)
            continue;
          inAzure.set(vm.name!.toLowerCase(), vmStateFromInstanceView(vm.instanceView?.statuses));
        }
        const filter = `tagName eq '${FLEET_TAG}' and tagValue eq '${this.fleet.replace(/'/g, "''")}'`;
        for await (const r of resources.resources.listByResourceGroup(this.options.resourceGroup, {
          ...call,
          filter,
        })) {
          const owner = r.tags?.[VM_TAG];
          if (owner !== undefined && !knownNames.has(owner.toLowerCase())) {
            orphans.push({ id: r.id!, type: r.type!, name: r.name!, vm: owner });
          }
        }
        const disks = { ...call, filter: "resourceType eq 'Microsoft.Compute/disks'" };
        for await (const disk of resources.resources.listByResourceGroup(this.options.resourceGroup, disks)) {
          const vmName = disk.name?.replace(/-osdisk$/, "");
          if (disk.name?.endsWith("-osdisk") && !disk.managedBy && !knownNames.has(vmName!.toLowerCase())) {
            orphans.push({ id: disk.id!, type: disk.type!, name: disk.name, vm: vmName ?? null });
          }
        }
      }
      const states: Record<string, VmState> = {};
      const missing: string[] = [];
      for (const vm of known) {
        const state = inAzure.get(vm.name.toLowerCase());
        if (state) states[vm.name] = state;
        else if (vm.providerData) missing.push(vm.name);
      }
      return { missing, states, orphans };
    });
  }

  /** Deletes the fleet's shared network and, when nothing else is in it, its resource group. */
  teardownFleet(): Promise<TeardownReport> {
    return this.guard("tear down the fleet", (signal) => this.network.teardown(signal));
  }

  async close(): Promise<void> {
    this.limit.clearQueue();
  }

  private userData(
    context: ProvisionContext,
    fqdn: string,
    publicUrl: string,
    certificate: BootstrapCertificate | null,
  ): string {
    const common = {
      controllerUrl: context.controllerUrl,
      ...(context.controllerUrls ? { controllerUrls: context.controllerUrls } : {}),
      artifactUrl: `${context.controllerUrl.replace(/\/+$/, "")}${ARTIFACT_PATH}`,
      artifactSha256: this.options.artifact.sha256,
      ...artifactVersionSettings(this.options.artifact, this.options.releasePublicKeyPem),
      bootstrapToken: context.bootstrapToken,
      passwordHash: context.passwordHash,
      notebookPort: this.options.notebookPort ?? DEFAULTS.notebookPort,
      publicPort: this.options.publicPort ?? DEFAULTS.publicPort,
      bindIp: "0.0.0.0",
      hostnames: certificate && certificate.hostname !== fqdn ? [certificate.hostname, fqdn] : [fqdn],
      publicUrl,
      ...(certificate ? { certificate } : {}),
      ...trustSettings(this.options.controllerTrust),
    };
    if (this.os === "windows") return renderWindowsBootstrap(common);
    // The notebook runs as the VM's admin user, never as root.
    return renderCloudInit({ ...common, runAs: this.options.adminUsername ?? DEFAULTS.adminUsername });
  }

  /** Deletes the VM (cascading to disk, NIC, IP), then whatever of the rest still exists. */
  private async removeAll(
    names: VmResourceNames,
    attempted: Set<"ip" | "nic" | "vm">,
    signal: AbortSignal,
  ): Promise<void> {
    const { network, compute } = this.clients;
    const rg = this.options.resourceGroup;
    const poll = this.callOptions(signal);
    const gone = (error: unknown) => {
      if (!isNotFound(error)) throw error;
    };
    if (attempted.has("vm")) await compute.virtualMachines.beginDeleteAndWait(rg, names.vm, poll).catch(gone);
    // Reads before deletes: most of these went with the VM, and a read costs no write quota.
    const still = async (get: () => Promise<unknown>) =>
      get().then(
        () => true,
        (error) => {
          gone(error);
          return false;
        },
      );
    if (attempted.has("vm") && (await still(() => compute.disks.get(rg, names.osDisk, poll)))) {
      await compute.disks.beginDeleteAndWait(rg, names.osDisk, poll).catch(gone);
    }
    if (attempted.has("nic") && (await still(() => network.networkInterfaces.get(rg, names.nic, poll)))) {
      await network.networkInterfaces.beginDeleteAndWait(rg, names.nic, poll).catch(gone);
    }
    if (attempted.has("ip") && (await still(() => network.publicIPAddresses.get(rg, names.publicIp, poll)))) {
      await network.publicIPAddresses.beginDeleteAndWait(rg, names.publicIp, poll).catch(gone);
    }
  }

  /** Options for every SDK call: the operation's abort signal and the poll interval. */
  private callOptions(signal: AbortSignal): { abortSignal: AbortSignal; updateIntervalInMs?: number } {
    return {
      abortSignal: signal,
      ...(this.options.pollIntervalMs ? { updateIntervalInMs: this.options.pollIntervalMs } : {}),
    };
  }

  private timeoutMessage(what: string): string {
    return `Azure did not finish the ${what} within ${this.operationTimeoutMs / 1000} s (NBFLEET_AZURE_OPERATION_TIMEOUT_SEC); it was abandoned`;
  }

  private describe(error: unknown): string {
    return isAuthFailure(error)
      ? credentialProblem(error, this.options.credential, this.options.subscriptionId)
      : describeAzureFailure(error);
  }

  /** A start, stop or restart: `choose` picks the Azure call (looking at the machine first if it must). */
  private async power(
    what: string,
    vm: ProviderVm,
    choose: (data: AzureProviderData, signal: AbortSignal) => Promise<PowerCall>,
  ): Promise<void> {
    const data = providerData(vm);
    await this.limit(() =>
      this.guard(what, async (signal) => {
        const call = await choose(data, signal);
        await this.clients.compute.virtualMachines[call](
          data.resourceGroup,
          data.names.vm,
          this.callOptions(signal),
        );
      }),
    );
  }

  /**
   * Runs Azure work under the operation deadline: its signal aborts the SDK's requests and polls
   * at `operationTimeoutMs`; should the work still not end (it may clean up for `graceMs` more),
   * it is abandoned so that its slot is free again. Any failure leaves as an AzureProviderError
   * with Azure's code and message, or saying the deadline passed.
   */
  private async guard<T>(what: string, work: (signal: AbortSignal) => Promise<T>, graceMs = 0): Promise<T> {
    const controller = new AbortController();
    const timers: NodeJS.Timeout[] = [];
    const abandoned = new Promise<never>((_, reject) => {
      timers.push(setTimeout(() => controller.abort(), this.operationTimeoutMs));
      timers.push(
        setTimeout(() => reject(controller.signal.reason), this.operationTimeoutMs + graceMs + 1000),
      );
    });
    try {
      return await Promise.race([work(controller.signal), abandoned]);
    } catch (error) {
      if (error instanceof AzureProviderError) throw error;
      if (controller.signal.aborted)
        throw new AzureProviderError(what, this.timeoutMessage(what), error, true);
      throw new AzureProviderError(what, this.describe(error), error);
    } finally {
      for (const timer of timers) clearTimeout(timer);
    }
  }
}

/** A failed Azure step: the message says what Azure answered (and, for a create, what was cleaned up). */
export class AzureProviderError extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly azureError?: unknown,
    /** The operation deadline passed (NBFLEET_AZURE_OPERATION_TIMEOUT_SEC). */
    readonly timedOut = false,
  ) {
    super(message);
    this.name = "AzureProviderError";
  }
}

/** `promise`, or a rejection as soon as `signal` aborts (for work shared by several callers). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function isAzureData(value: unknown): value is AzureProviderData {
  const data = value as Partial<AzureProviderData> | null;
  return typeof data?.resourceGroup === "string" && typeof data.names?.vm === "string";
}

type PowerCall = "beginStartAndWait" | "beginDeallocateAndWait" | "beginRestartAndWait";

function providerData(vm: ProviderVm): AzureProviderData {
  if (!isAzureData(vm.providerData)) {
    throw new Error(`VM ${vm.name} has no Azure resources recorded (was it created by the azure provider?)`);
  }
  return vm.providerData;
}
