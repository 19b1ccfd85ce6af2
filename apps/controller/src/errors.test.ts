import { readFileSync, readdirSync, statSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { describe, expect, it } from "vitest";
import { ERRORS, ERROR_CODES, NbfError, formatMessage } from "./errors.js";

const here = new URL(".", import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith(".ts") && !name.endsWith(".test.ts") && name !== "errors.ts" ? [path] : [];
  });
}

describe("error catalogue", () => {
  it("lists the same codes and statuses as the README's Error codes section", () => {
    const readme = readFileSync(join(here, "..", "README.md"), "utf8");
    const section = readme.split(/^## Error codes$/m)[1]?.split(/^## /m)[0] ?? "";
    const rows = [...section.matchAll(/^\| `(NBF_[A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => [
      m[1],
      Number(m[2]),
    ]);
    expect(rows).toEqual(ERROR_CODES.map((code) => [code, ERRORS[code].status]));
  });

  it("uses every code somewhere outside the catalogue", () => {
    const text = sources(here)
      .map((path) => readFileSync(path, "utf8"))
      .join("\n");
    const unused = ERROR_CODES.filter((code) => !text.includes(`"${code}"`));
    expect(unused).toEqual([]);
  });

  it("fills message templates from details and serialises to the API's error shape", () => {
    const error = new NbfError("NBF_VM_NOT_FOUND", { name: "ghost" });
    expect(error.status).toBe(404);
    expect(error.toJSON()).toEqual({
      error: { code: "NBF_VM_NOT_FOUND", message: "no VM named ghost", details: { name: "ghost" } },
    });
    expect(formatMessage("{a} and {b}", { a: 1 })).toBe("1 and {b}");
  });

  it("answers the router's own refusals in the catalogue's shape, over a socket and through inject", async () => {
    const controller = await startTestController();
    try {
      const { app, adminToken: token } = controller;
      for (const path of ["/v1/vms/%E0%A4%A", "/v1/vms/%ZZ/notebook/restart", `/v1/vms/${"a".repeat(101)}`]) {
        const injected = await call(app, "GET", path, { token });
        const sent = await rawGet(controller.url, path, token);
        for (const res of [{ status: injected.statusCode, body: injected.body }, sent]) {
          expect(res.status, path).toBe(400);
          const body = JSON.parse(res.body);
          expect(body, path).toEqual({
            error: { code: "NBF_INVALID_PARAMS", message: expect.any(String), details: expect.any(Object) },
          });
          expect(body.error.message).toMatch(/^invalid path parameter: '.+' /);
        }
      }
      const bad = (await call(app, "GET", "/v1/vms/%E0%A4%A", { token })).json();
      expect(bad.error.message).toBe(
        "invalid path parameter: '/v1/vms/%E0%A4%A' is not a valid url component: a %-escape in it is malformed or not UTF-8",
      );
      expect((await call(app, "GET", "/v1/vms/ghost", { token })).json().error.code).toBe("NBF_VM_NOT_FOUND");
    } finally {
      await controller.close();
    }
  });
});

/** A GET whose path goes out exactly as written (no client normalises its percent-encoding). */
function rawGet(base: string, path: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    request.on("error", reject);
  });
}
