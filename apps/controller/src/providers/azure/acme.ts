/**
 * What ACME means on Azure: which challenge can work here, the name the certificate is for (the
 * public IP's `<label>.<region>.cloudapp.azure.com` unless the request named another), the
 * bootstrap's `certificate` setting, and the NSG rule that lets the CA reach an HTTP-01 answer.
 */
import type { SecurityRule } from "@azure/arm-network";
import type { GuestCertificate as BootstrapCertificate } from "@nbfleet/scripts";
import { bootstrapCertificate } from "../bootstrap-certificate.js";
import type { GuestCertificate } from "../types.js";
import { inboundRule } from "./security-rule.js";

/** The NSG rule admitting the CA's HTTP-01 validation; present only while a machine uses it. */
export const ACME_HTTP_RULE = "nbfleet-acme-http-01";
/** After `nbfleet-notebook` (100) and `nbfleet-ssh` (110). */
export const ACME_HTTP_RULE_PRIORITY = 120;
/** On the VM resource of a machine whose agent answers HTTP-01 (value: the port). */
export const ACME_TAG = "nbfleet-acme-http-01";

export function azureFqdn(dnsLabel: string, location: string): string {
  return `${dnsLabel}.${location.toLowerCase().replace(/\s+/g, "")}.cloudapp.azure.com`;
}

/**
 * Why this certificate cannot be had on an Azure machine (null = fine). TLS-ALPN-01 would be
 * validated on public 443, which the guest redirects to the notebook: the agent's answer never
 * sees the CA. HTTP-01 on the public notebook port would meet the same redirect.
 */
export function azureAcmeProblem(certificate: GuestCertificate, publicPort: number): string | null {
  if (certificate.challenge === "tls-alpn-01") {
    return `ACME challenge tls-alpn-01 is not supported on Azure: the CA validates it on port 443, which the guest redirects to the notebook, so it would never reach the agent's answer; set NBFLEET_ACME_CHALLENGE=http-01 (the CA then validates on TCP 80, which the fleet's network security group admits while a machine uses ACME)`;
  }
  if (certificate.challengePort === publicPort) {
    return `ACME challenge port ${certificate.challengePort} is the public notebook port, which the guest redirects to the notebook; set NBFLEET_ACME_CHALLENGE_PORT to 80 (where public CAs validate http-01)`;
  }
  return null;
}

/** The bootstrap setting for `certificate`, on `fqdn` when the request named no host. */
export function bootstrapCertificateOn(certificate: GuestCertificate, fqdn: string): BootstrapCertificate {
  return bootstrapCertificate({ ...certificate, hostname: certificate.hostname || fqdn });
}

/** From anywhere: a CA's validators come from addresses it does not publish. */
export function acmeHttpRule(port: number): SecurityRule {
  return inboundRule(ACME_HTTP_RULE, ACME_HTTP_RULE_PRIORITY, port, ["*"]);
}
