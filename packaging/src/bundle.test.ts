/**
 * bundleController on a small stand-in for the controller: the module swap, the files read
 * beside a module, and the failures that must stop a release build.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bundleController } from "./bundle.js";

const run = promisify(execFile);
let dir: string;

async function write(relative: string, text: string): Promise<void> {
  await mkdir(path.dirname(path.join(dir, relative)), { recursive: true });
  await writeFile(path.join(dir, relative), text);
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-bundle-"));
  await write("package.json", '{"type":"module"}');
  await write(
    "src/cli/main.ts",
    [
      'import { readFileSync } from "node:fs";',
      'import { agentArtifact } from "./agent-artifact.js";',
      'const template = readFileSync(new URL("./template.sh", import.meta.url), "utf8");',
      "console.log(JSON.stringify({ template, artifact: typeof agentArtifact }));",
    ].join("\n"),
  );
  await write("src/cli/template.sh", "echo hello\n");
  await write("src/cli/agent-artifact.ts", 'export function agentArtifact() { return "checkout"; }\n');
});

afterEach(() => rm(dir, { recursive: true, force: true }));

describe("bundleController", () => {
  it("swaps in the shipped artifact module, copies files read beside a module, and runs with plain node", async () => {
    const out = path.join(dir, "release", "lib", "nbfleet.mjs");
    const result = await bundleController(dir, out);
    expect(result.assets).toEqual(["template.sh"]);
    expect((await readdir(path.dirname(out))).sort()).toEqual(["nbfleet.mjs", "template.sh"]);
    const bundle = await readFile(out, "utf8");
    expect(bundle).not.toContain('"checkout"');
    expect(bundle).toContain("is not the one this release was built with");
    expect(result.inputs).toContain(path.join(dir, "src/cli/main.ts"));
    const { stdout } = await run(process.execPath, [out], { cwd: tmpdir() });
    expect(JSON.parse(stdout)).toEqual({ template: "echo hello\n", artifact: "function" });
  });

  it("leaves what a command imports when it runs in a chunk of its own, loaded only then", async () => {
    await write(
      "src/cli/main.ts",
      [
        'import { agentArtifact } from "./agent-artifact.js";',
        "if (process.argv[2] === 'heavy') console.log((await import('./heavy.js')).template);",
        "else console.log(typeof agentArtifact, typeof globalThis.heavyLoaded);",
      ].join("\n"),
    );
    await write(
      "src/cli/heavy.ts",
      [
        'import { readFileSync } from "node:fs";',
        "(globalThis as { heavyLoaded?: boolean }).heavyLoaded = true;",
        'export const template = readFileSync(new URL("./template.sh", import.meta.url), "utf8");',
      ].join("\n"),
    );
    const out = path.join(dir, "release", "lib", "nbfleet.mjs");
    await bundleController(dir, out);
    const files = await readdir(path.dirname(out));
    expect(files.filter((f) => /^chunk-\w+\.mjs$/.test(f)).length).toBeGreaterThan(0);
    expect(await readFile(out, "utf8")).not.toContain("heavyLoaded = true");
    expect((await run(process.execPath, [out], { cwd: tmpdir() })).stdout).toBe("function undefined\n");
    expect((await run(process.execPath, [out, "heavy"], { cwd: tmpdir() })).stdout).toBe("echo hello\n\n");
  });

  it("fails when nothing imports the checkout's agent artifact module", async () => {
    await write("src/cli/main.ts", 'console.log("no artifact");\n');
    await expect(bundleController(dir, path.join(dir, "out.mjs"))).rejects.toThrow(
      /nothing imported .*agent-artifact\.ts/,
    );
  });

  it("fails on a file read from outside its module's directory, naming module and path", async () => {
    await write("src/cli/reader.ts", 'export const x = new URL("../other/file.txt", import.meta.url);\n');
    await write(
      "src/cli/main.ts",
      'import { agentArtifact } from "./agent-artifact.js";\nimport { x } from "./reader.js";\nconsole.log(x, agentArtifact);\n',
    );
    await expect(bundleController(dir, path.join(dir, "out.mjs"))).rejects.toThrow(
      /reader\.ts reads \.\.\/other\/file\.txt relative to itself/,
    );
  });

  it("fails when two modules read different files of one name beside them", async () => {
    await write("src/cli/other/template.sh", "echo other\n");
    await write("src/cli/other/reader.ts", 'export const t = new URL("./template.sh", import.meta.url);\n');
    await write(
      "src/cli/main.ts",
      'import { agentArtifact } from "./agent-artifact.js";\nimport { t } from "./other/reader.js";\nconsole.log(new URL("./template.sh", import.meta.url), t, agentArtifact);\n',
    );
    await expect(bundleController(dir, path.join(dir, "out.mjs"))).rejects.toThrow(
      /two modules read a file named template\.sh/,
    );
  });

  it("names the file and line esbuild could not bundle", async () => {
    await write("src/cli/main.ts", 'import { agentArtifact } from "./agent-artifact.js";\nconst = 1;\n');
    await expect(bundleController(dir, path.join(dir, "out.mjs"))).rejects.toThrow(
      /esbuild could not bundle the controller .* at src\/cli\/main\.ts:2/,
    );
  });
});
