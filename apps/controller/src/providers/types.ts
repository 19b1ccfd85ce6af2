/**
 * What the controller needs from a place that runs machines (local sandboxes, Azure, ...).
 * A provider makes the machine and starts the agent inside it with the bootstrap token; from
 * then on the controller talks to the agent, not to the provider. Errors thrown here reach the
 * operator as NBF_PROVIDER_FAILED with the error's message.
 */
import type { FleetTeardownReport } from "@nbfleet/shared";
import type { VmState } from "@nbfleet/shared";

export interface ProviderVm {
  name: string;
  labels: Record<string, string>;
  /** What this provider returned from `create` (paths, resource ids, ...); null before. */
  providerData: unknown;
}

export interface ProvisionContext {
  /** One-time token (`nbfb_…`) the agent presents on its first connect. */
  bootstrapToken: string;
  /** Base URL of this controller as agents reach it, e.g. `http://127.0.0.1:7070`. */
  controllerUrl: string;
  /** The URLs the agent dials, tried in turn, when not just `controllerUrl` (replicas). */
  controllerUrls?: string[];
  /**
   * The notebook password hash (Jupyter `argon2:` format). It is also queued as a
   * `password.set` command; a provider may hand it to the agent earlier so the notebook never
   * starts without it.
   */
  passwordHash: string;
  /** The notebook's certificate from ACME; absent = self-signed (the agent makes its own). */
  certificate?: GuestCertificate;
}

export type AcmeChallenge = "http-01" | "tls-alpn-01";

/** How the guest's agent gets its notebook certificate over ACME (the bootstrap's `certificate`). */
export interface GuestCertificate {
  mode: "acme";
  /** The machine's public DNS name: the request's, else the provider's `publicHostname`. */
  hostname: string;
  directoryUrl: string;
  email: string | null;
  /** PEM CA trusted for the ACME server's own TLS (NBFLEET_ACME_CA_FILE's content). */
  caPem: string | null;
  challenge: AcmeChallenge;
  challengePort: number;
}

export interface ProvisionResult {
  /** The notebook URL when the provider knows it before the agent reports (e.g. a public IP). */
  notebookUrl?: string | null;
  /** Kept with the VM and handed back in `ProviderVm.providerData`. */
  providerData?: unknown;
}

export interface Provider {
  /** Stored with each VM and shown as `provider` in the API, e.g. `local` or `azure`. */
  readonly name: string;
  /** Makes the machine and starts its agent; resolves once that is under way. */
  create(vm: ProviderVm, context: ProvisionContext): Promise<ProvisionResult | undefined>;
  start(vm: ProviderVm): Promise<void>;
  stop(vm: ProviderVm): Promise<void>;
  restart(vm: ProviderVm): Promise<void>;
  /** Removes the machine and everything it left behind; deleting a missing machine succeeds. */
  delete(vm: ProviderVm): Promise<void>;
  /** Called when the controller shuts down; agents in machines are expected to survive it. */
  close?(): Promise<void>;
  /**
   * The public DNS name the machine will have (Azure: `<label>.<region>.cloudapp.azure.com`),
   * asked before `create`; null or absent = none known, so ACME needs a hostname in the request.
   */
  publicHostname?(vm: ProviderVm): string | null;
  /** Why this provider cannot make a machine of this name (null = fine); asked before anything is stored. */
  checkName?(name: string): string | null;
  /** Why this provider cannot serve this certificate setting (null = fine); asked before anything is stored. */
  checkCertificate?(certificate: GuestCertificate): string | null;
  /** What the place holds compared with the machines the controller knows (run periodically). */
  reconcile?(known: ProviderVm[]): Promise<ReconcileReport>;
  /**
   * Deletes what the fleet's machines shared (Azure: the VNet, the NSG and, when nothing else is
   * in it, the resource group); asked only once the controller knows no machine. Absent: the
   * provider keeps nothing shared.
   */
  teardownFleet?(): Promise<Omit<FleetTeardownReport, "provider">>;
}

export interface ReconcileReport {
  /** Known machines the provider no longer has (deleted outside nbfleet). */
  missing: string[];
  /** The machine state the provider reports, by VM name. */
  states: Record<string, VmState>;
  /** Resources of this fleet that belong to no known machine. */
  orphans: Array<{ id: string; type: string; name: string; vm: string | null }>;
}
