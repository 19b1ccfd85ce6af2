import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { AgentError } from "../errors.js";
import { generateInChild } from "./certificate-child.js";
import { ensureCertificate, rotateCertificate } from "./ensure.js";
import { checkPair } from "./inspect.js";

// reflect-metadata, which the X.509 library needs, defines Reflect.getMetadata once loaded.
const x509Loaded = () => "getMetadata" in Reflect;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "nbf-tls-child-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("certificates are made in a child process", () => {
  it("returns a matching pair for the requested names and lifetime", async () => {
    const now = new Date("2030-01-02T03:04:05Z");
    const pair = await generateInChild({ hostnames: ["nb.example.org"], ips: ["192.0.2.7"], days: 30, now });
    const info = checkPair(pair.certPem, pair.keyPem, now);
    expect(info.subjectAltNames).toEqual(expect.arrayContaining(["DNS:nb.example.org", "IP:192.0.2.7"]));
    expect(Date.parse(info.notAfter)).toBe(now.getTime() + 30 * 24 * 60 * 60 * 1000);
    expect(x509Loaded()).toBe(false);
  });

  it("passes the child's AgentError through with its code", async () => {
    const error = await generateInChild({ days: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentError);
    expect(error).toMatchObject({ code: "NBF_INVALID_INPUT", details: { days: 0 } });
  });

  it("ensure and rotate never load the X.509 library into this process", async () => {
    const paths = dataPaths(dir);
    expect((await ensureCertificate(paths)).action).toBe("generated");
    await rotateCertificate(paths, { hostnames: ["other.example.org"] });
    expect(x509Loaded()).toBe(false);
  });
});
