/**
 * A new VM's certificate: the request's `certificate` (or the fleet default) resolved against
 * the name the provider knows for the machine, and what its guest is told to do about it.
 */
import type { VmCertificateRequest } from "@nbfleet/shared";
import type { GuestAcmeSettings } from "../config/acme-settings.js";
import { NbfError } from "../errors.js";
import type { GuestCertificate, Provider, ProviderVm } from "../providers/types.js";
import { SELF_SIGNED, type VmCertificateChoice } from "../store/vms-repo.js";

/**
 * The request's `acme` needs a hostname, given or the public DNS name the provider knows for the
 * machine (`publicHostname`); the fleet's default `acme` applies only where the provider knows
 * one, and is self-signed elsewhere. Asked before anything is stored: a refusal changes nothing.
 */
export function resolveVmCertificate(
  request: VmCertificateRequest | undefined,
  defaultMode: GuestAcmeSettings["defaultMode"],
  provider: Pick<Provider, "name" | "publicHostname">,
  vm: ProviderVm,
): VmCertificateChoice {
  const publicName = (): string | null => {
    const name = provider.publicHostname?.(vm) ?? null;
    if (name === null) return null;
    const problem = hostnameProblem(name);
    if (problem === null) return name.toLowerCase();
    throw new NbfError("NBF_PROVIDER_FAILED", {
      provider: provider.name,
      action: "name",
      name: vm.name,
      reason: `its public DNS name ${JSON.stringify(name)} ${problem}`,
    });
  };
  if (request === undefined) {
    if (defaultMode === "self-signed") return SELF_SIGNED;
    const name = publicName();
    return name === null ? SELF_SIGNED : { mode: "acme", hostname: name };
  }
  let given: string | null = null;
  if (request.hostname !== undefined) {
    const problem = hostnameProblem(request.hostname);
    if (problem !== null) throw invalidHostname(`${JSON.stringify(request.hostname)} ${problem}`);
    given = request.hostname.toLowerCase();
  }
  if (request.mode === "self-signed") return { mode: "self-signed", hostname: given };
  const hostname = given ?? publicName();
  if (hostname === null) {
    throw invalidHostname(
      `is required with mode acme: provider ${provider.name} knows no public DNS name for the machine; give the name that resolves to it`,
    );
  }
  return { mode: "acme", hostname };
}

/** The ProvisionContext's `certificate`: absent for self-signed (the agent makes its own). */
export function guestCertificate(
  choice: VmCertificateChoice,
  acme: GuestAcmeSettings,
): GuestCertificate | undefined {
  if (choice.mode !== "acme" || choice.hostname === null) return undefined;
  return {
    mode: "acme",
    hostname: choice.hostname,
    directoryUrl: acme.directoryUrl,
    email: acme.email,
    caPem: acme.caPem,
    challenge: acme.challenge,
    challengePort: acme.challengePort,
  };
}

/**
 * Beyond the schema's DNS pattern (which a provider's name has not passed): a CA refuses an
 * IPv4 address (digits only in the last label) as a DNS identifier. Names are kept lowercased:
 * DNS compares them without case.
 */
function hostnameProblem(name: string): string | null {
  const host = name.toLowerCase();
  const labels = host.split(".");
  return host.length > 253
    ? "is longer than 253 characters"
    : labels.length < 2
      ? "must have at least two labels (a public DNS name)"
      : labels.some((label) => !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label))
        ? "must be letters, digits and inner hyphens in labels of at most 63 characters"
        : /^[0-9]+$/.test(labels.at(-1)!)
          ? "is an IP address; ACME certificates here are for DNS names"
          : null;
}

function invalidHostname(problem: string): NbfError {
  return new NbfError("NBF_INVALID_BODY", {
    field: "certificate.hostname",
    problems: `certificate.hostname ${problem}`,
  });
}
