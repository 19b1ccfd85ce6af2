// Writes .br and .gz next to every asset so the controller can serve them precompressed.
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { constants, brotliCompressSync, gzipSync } from "node:zlib";

const dist = new URL("../dist/", import.meta.url).pathname;
const COMPRESSIBLE = /\.(js|css|html|svg|json|txt|map)$/;

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (COMPRESSIBLE.test(entry.name)) yield path;
  }
}

let raw = 0;
let gz = 0;
let br = 0;
for await (const path of files(dist)) {
  const body = await readFile(path);
  const gzipped = gzipSync(body, { level: 9 });
  const brotli = brotliCompressSync(body, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length },
  });
  await writeFile(`${path}.gz`, gzipped);
  await writeFile(`${path}.br`, brotli);
  raw += body.length;
  gz += gzipped.length;
  br += brotli.length;
}
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`precompressed: ${kb(raw)} raw, ${kb(gz)} gzip, ${kb(br)} brotli`);
