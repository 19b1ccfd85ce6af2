/**
 * The one error this package throws: NBF_ACME_FAILED with the ACME problem (type, detail, a rate
 * limit's retryAt) in its details. Callers re-throw it under their own catalogue's class.
 */
import { CodedError } from "@nbfleet/shared/coded-error";

export type AcmeErrorCode = "NBF_ACME_FAILED";

export class AcmeError extends CodedError<AcmeErrorCode> {
  override name = "AcmeError";

  constructor(message: string, details: Record<string, unknown> = {}) {
    super("NBF_ACME_FAILED", message, details);
  }
}
