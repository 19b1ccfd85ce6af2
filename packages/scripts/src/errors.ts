/**
 * The error catalogue of @nbfleet/scripts: building the agent artifact and rendering guest
 * bootstraps. Invalid bootstrap settings throw shared's `ValidationError` (NBF_INVALID_INPUT),
 * which names the field.
 */
import { CodedError } from "@nbfleet/shared/coded-error";

export const ScriptsErrorCodes = {
  NBF_ARTIFACT_BUILD_FAILED: "the agent artifact could not be bundled or packed",
  NBF_ARTIFACT_INVALID: "an agent artifact handed in to publish is not a well-formed, bounded agent tarball",
  NBF_CUSTOM_DATA_TOO_LARGE: "the cloud-init user-data exceeds Azure's customData limit",
  NBF_PROCESS_STOP_TIMEOUT: "a sandbox process was still running after SIGKILL and its wait deadline",
} as const;
export type ScriptsErrorCode = keyof typeof ScriptsErrorCodes;

export class ScriptsError extends CodedError<ScriptsErrorCode> {
  override name = "ScriptsError";
}
