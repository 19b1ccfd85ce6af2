import { describe, expect, it } from "vitest";
import { AgentError } from "../errors.js";
import { runJsonChild } from "./json-child.js";

const node = (code: string) => [process.execPath, "-e", code];

describe("runJsonChild", () => {
  it("returns the child's JSON answer, with what it read on stdin", async () => {
    const { answer } = await runJsonChild<{ got: string }>(
      node(
        "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>process.stdout.write(JSON.stringify({ok:true,got:s})))",
      ),
      { input: "hello", timeoutMs: 10_000 },
    );
    expect(answer).toEqual({ ok: true, got: "hello" });
  });

  it("throws an answer with a known agent error code as that error", async () => {
    const run = runJsonChild(
      node(
        'process.stdout.write(JSON.stringify({ok:false,code:"NBF_ACME_FAILED",message:"refused",details:{step:"order"}}))',
      ),
      { timeoutMs: 10_000 },
    );
    await expect(run).rejects.toBeInstanceOf(AgentError);
    await expect(run).rejects.toMatchObject({
      code: "NBF_ACME_FAILED",
      message: expect.stringContaining("refused"),
    });
  });

  it("stops a child that writes without bound and refuses its answer", async () => {
    const { answer, how } = await runJsonChild(
      node("const b='x'.repeat(65536);const w=()=>{process.stdout.write(b);setImmediate(w)};w()"),
      { timeoutMs: 20_000 },
    );
    expect(answer).toBeUndefined();
    expect(how).toMatch(/more than 1048576 bytes/);
  });

  it("says how a child without an answer ended", async () => {
    const { answer, how, stderr } = await runJsonChild(node("console.error('boom');process.exit(3)"), {
      timeoutMs: 10_000,
    });
    expect(answer).toBeUndefined();
    expect(how).toBe("exited with code 3");
    expect(stderr).toContain("boom");
  });
});
