/**
 * A controller.trust operation's command, made once when it is created: the certificates given
 * (PEM) become the pins every agent is sent, each a certificate's SHA-256 and its key's. Checked
 * before anything is stored: each must be one certificate, and no private key, still valid; and
 * the set must keep the certificate this controller serves (or its key), or every agent
 * connected through it would refuse the set (they would lock themselves out).
 */
import { X509Certificate } from "node:crypto";
import type { CommandParamsOf } from "@nbfleet/shared";
import { type CertificatePin, certificateSha256, publicKeySha256 } from "@nbfleet/shared/certificate-pin";
import { NbfError } from "../errors.js";
import type { CreateOperationInput } from "./engine.js";

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/g;

export function trustPlan(
  input: CreateOperationInput,
  guestPin: CertificatePin | null,
  now = Date.now(),
): CommandParamsOf<"controller.trust"> {
  if (!guestPin) {
    throw invalid(
      "guests do not pin this controller's certificate (it serves a CA's certificate, ACME, or plain HTTP), so there is no pin to move; controller.trust is for a controller serving --tls-cert without --tls-ca",
    );
  }
  const given = input.params?.certificates;
  if (!given || given.length === 0)
    throw invalid("controller.trust needs params.certificates: every controller certificate (PEM) to trust");
  const pins: CommandParamsOf<"controller.trust">["pins"] = [];
  given.forEach((pem, i) => {
    const cert = parseOne(pem, `params.certificates[${i}]`, now);
    const pin = { certificateSha256: certificateSha256(cert), keySha256: publicKeySha256(cert) };
    if (!pins.some((p) => p.certificateSha256 === pin.certificateSha256)) pins.push(pin);
  });
  if (!pins.some((pin) => keeps(pin, guestPin))) {
    throw invalid(
      `params.certificates must include the certificate this controller serves (SHA-256 ${guestPin.certificateSha256}) or one with its key (${guestPin.keySha256}); the agents connected through it would refuse a set without it`,
    );
  }
  return { pins };
}

/** The pin accepts the served certificate: the very one, or one with its key. */
function keeps(pin: CertificatePin, served: CertificatePin): boolean {
  return pin.certificateSha256 === served.certificateSha256 || pin.keySha256 === served.keySha256;
}

function parseOne(pem: string, field: string, now: number): X509Certificate {
  if (/PRIVATE KEY-----/.test(pem))
    throw invalid(`${field} holds a private key; give certificates only (nothing was stored)`);
  const count = pem.match(PEM_CERTIFICATE)?.length ?? 0;
  if (count !== 1) throw invalid(`${field} must hold exactly one PEM certificate, found ${count}`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (error) {
    throw invalid(`${field} is not a readable certificate: ${(error as Error).message}`);
  }
  if (Date.parse(cert.validTo) <= now)
    throw invalid(
      `${field} (SHA-256 ${certificateSha256(cert)}) expired at ${new Date(cert.validTo).toISOString()}`,
    );
  return cert;
}

function invalid(problem: string): NbfError {
  return new NbfError("NBF_OPERATION_INVALID", { problem });
}
