/**
 * `pnpm build`: writes the controller release to dist/nbfleet-<version>.tgz (or `--out <dir>`).
 * Install it on a machine with Node 20: `npm install -g ./nbfleet-<version>.tgz`.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildRelease } from "./build-release.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

try {
  const { values } = parseArgs({ options: { out: { type: "string" } }, strict: true });
  const started = Date.now();
  const release = await buildRelease({ repoRoot, outDir: values.out ?? path.join(repoRoot, "dist") });
  for (const warning of release.warnings) console.error(`warning: ${warning}`);
  const mib = (release.bytes / 2 ** 20).toFixed(1);
  console.log(`${release.file}  (${mib} MiB, built in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`  agent ${release.agent.version}  sha256 ${release.agent.sha256}`);
  console.log(
    `  npm installs: ${Object.entries(release.dependencies)
      .map(([name, version]) => `${name}@${version}`)
      .join(", ")}`,
  );
  const relative = path.relative(process.cwd(), release.file);
  console.log(`  install: npm install -g ${relative.startsWith("..") ? release.file : `./${relative}`}`);
} catch (error) {
  const code = (error as { code?: string }).code;
  console.error(`pnpm build: ${(error as Error).message}${code ? ` [${code}]` : ""}`);
  process.exitCode = 1;
}
