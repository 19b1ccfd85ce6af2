/**
 * A console build as vite and the compress step leave it (index.html, a hashed script with its
 * .br and .gz), for controller tests that must not depend on apps/console/dist existing: a
 * clean checkout has no build, and its console routes answer 503 until one is made.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { makeDataDir } from "./data-dir.js";

export const FAKE_CONSOLE_INDEX =
  '<!doctype html><html><head><script type="module" src="/assets/app-3f9a1c.js"></script></head></html>';
export const FAKE_CONSOLE_SCRIPT = `console.log(${JSON.stringify("nbfleet console ".repeat(200))});`;

/** The build's directory; it also holds `secret.txt`, which must never be served. */
export function fakeConsoleBuild(): string {
  const dir = join(makeDataDir("nbf-console-dist-"), "dist");
  mkdirSync(join(dir, "assets"), { recursive: true });
  writeFileSync(join(dir, "index.html"), FAKE_CONSOLE_INDEX);
  writeFileSync(join(dir, "assets", "app-3f9a1c.js"), FAKE_CONSOLE_SCRIPT);
  writeFileSync(join(dir, "assets", "app-3f9a1c.js.br"), brotliCompressSync(FAKE_CONSOLE_SCRIPT));
  writeFileSync(join(dir, "assets", "app-3f9a1c.js.gz"), gzipSync(FAKE_CONSOLE_SCRIPT));
  writeFileSync(join(dir, "secret.txt"), "not served");
  return dir;
}
