/**
 * The `nbfleet` CLI from the checkout, bundled once per test run for the tests that run it (or
 * `nbfleet server`) as a process. Through tsx every run loaded some 200 TypeScript modules
 * through the loader's hooks: 2.8 s and 3.6 s of CPU for `nbfleet vm ls`, a hundred-odd times a
 * run. Bundled by esbuild (the transpiler tsx uses) it starts in about 0.4 s. The workspace's
 * sources go into the bundle; other packages stay outside it, imported from where the checkout
 * installed them. Split into chunks, so `server` and `up` still load the whole controller only
 * when they run.
 *
 * Each workspace module keeps its own `import.meta.url` (its path in the checkout), so what it
 * finds beside itself is what it finds under tsx: the bootstrap scripts' templates, the built
 * console, the agent's sources the server builds its artifact from.
 */
import { mkdir, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { type Plugin, build, transform } from "esbuild";
import { CLI_BUNDLE_DIR, controllerMain } from "./repo.js";

export async function buildCliBundle(): Promise<void> {
  const parent = path.dirname(CLI_BUNDLE_DIR);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(path.join(parent, "nbfleet-test-cli-"));
  try {
    await build({
      entryPoints: [controllerMain],
      outdir: staging,
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      target: "node20",
      logLevel: "silent",
      // Bundled CommonJS dependencies of the workspace still call `require`.
      banner: {
        js: 'import { createRequire as __cliRequire } from "node:module"; const require = __cliRequire(import.meta.url);',
      },
      plugins: [
        ownModuleUrls,
        {
          name: "installed-packages-outside",
          setup(b) {
            b.onResolve({ filter: /^[^./]/ }, async (args) => {
              if (
                args.path.startsWith("node:") ||
                args.path.startsWith("@nbfleet/") ||
                args.pluginData === OWN
              )
                return undefined;
              // Resolved as the importer would, then imported by that path from the bundle.
              const found = await b.resolve(args.path, {
                kind: args.kind,
                resolveDir: args.resolveDir,
                importer: args.importer,
                pluginData: OWN,
              });
              return found.errors.length > 0
                ? { errors: found.errors }
                : { path: found.path, external: true };
            });
          },
        },
      ],
    });
    await rm(CLI_BUNDLE_DIR, { recursive: true, force: true });
    await rename(staging, CLI_BUNDLE_DIR);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

const OWN = Symbol("resolved by installed-packages-outside");

const ownModuleUrls: Plugin = {
  name: "own-module-urls",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const source = await readFile(args.path, "utf8");
      const { code } = await transform(source, {
        loader: "ts",
        format: "esm",
        sourcefile: args.path,
        define: { "import.meta.url": JSON.stringify(pathToFileURL(args.path).href) },
      });
      return { contents: code, loader: "js" };
    });
  },
};
