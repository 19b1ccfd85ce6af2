/** ProvisionContext.certificate as the guest bootstraps (packages/scripts) take it. */
import type { GuestCertificate as BootstrapCertificate } from "@nbfleet/scripts";
import type { GuestCertificate } from "./types.js";

export function bootstrapCertificate(certificate: GuestCertificate): BootstrapCertificate {
  const { caPem, ...rest } = certificate;
  return { ...rest, ...(caPem ? { caPem } : {}) };
}
