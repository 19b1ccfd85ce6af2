/**
 * The base of each package's error catalogue: a stable `NBF_…` code, a message a person can act
 * on, and the values that were wrong. Imported as `@nbfleet/shared/coded-error`: the agent's
 * certificate child loads its errors and nothing else of shared.
 */
export class CodedError<Code extends string> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
