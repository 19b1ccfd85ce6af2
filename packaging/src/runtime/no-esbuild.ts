/**
 * Stands in for esbuild inside a release bundle. The checkout's agent artifact builder imports
 * esbuild; a release ships its artifact instead (see shipped-agent-artifact.ts), so nothing may
 * reach here, and if something does it says so rather than looking for an esbuild binary.
 */
export const version = "none: a release does not bundle";

export function build(): never {
  throw Object.assign(
    new Error("this nbfleet release ships its agent artifact and builds nothing at run time (no esbuild)"),
    { code: "NBF_RELEASE_NO_BUILD" },
  );
}
