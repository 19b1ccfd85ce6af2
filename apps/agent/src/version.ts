/**
 * The version this agent reports (hello, `--version`): the one its artifact was built as
 * (`pnpm build:agent --version V` bakes it in through esbuild's `define`), else the source
 * tree's AGENT_VERSION (run from a checkout through tsx, nothing is defined).
 */
import { AGENT_VERSION } from "@nbfleet/shared";

declare const __NBFLEET_AGENT_VERSION__: string | undefined;

/** The name esbuild replaces with the build's version (a JSON string literal). */
export const AGENT_VERSION_DEFINE = "__NBFLEET_AGENT_VERSION__";

export function agentVersion(): string {
  // `typeof` of an undeclared global is "undefined", never a ReferenceError.
  return typeof __NBFLEET_AGENT_VERSION__ === "string" ? __NBFLEET_AGENT_VERSION__ : AGENT_VERSION;
}
