import { describe, expect, it } from "vitest";
import { checkKernel } from "./kernel-check.js";

describe("checkKernel with an abort signal", () => {
  it("ends at once, cancelled, without asking the server, when aborted before it starts", async () => {
    const abort = new AbortController();
    abort.abort(new Error("the notebook server is stopping"));
    // Nothing listens on port 1, and the certificate file does not exist: any request would fail differently.
    const target = {
      host: "127.0.0.1",
      port: 1,
      baseUrl: "/",
      token: "t",
      pid: 1,
      certFile: "/nonexistent/cert.pem",
      diskPath: "/",
    };
    const check = await checkKernel(target, new Date(), 60_000, abort.signal);
    expect(check).toMatchObject({
      name: "kernel",
      status: "fail",
      message: "cancelled: the notebook server is stopping; seen so far: nothing",
      data: { cancelled: true },
    });
  });
});
