import net from "node:net";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { afterEach, describe, expect, it } from "vitest";
import { serverTimeouts } from "./timeouts.js";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

interface RawExchange {
  /** Everything the server sent. */
  received: string;
  /** Bytes of the body this client managed to send before the server closed. */
  bodySent: number;
  /** Milliseconds from the first byte sent to the server closing the connection. */
  closedAfterMs: number;
}

/**
 * A raw client: sends `head`, then one body byte every `byteEveryMs` until `bodyBytes` are out,
 * and reports when the server closed the connection. Gives up (and fails) after `deadlineMs`.
 */
function rawClient(
  url: string,
  head: string,
  options: { bodyBytes: number; byteEveryMs: number; deadlineMs: number },
): Promise<RawExchange> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1");
    const started = Date.now();
    let received = "";
    let bodySent = 0;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`still open after ${options.deadlineMs} ms (sent ${bodySent} body bytes): ${received}`),
      );
    }, options.deadlineMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(giveUp);
      clearInterval(timer);
      resolve({ received, bodySent, closedAfterMs: Date.now() - started });
    });
    socket.on("connect", () => {
      if (head) socket.write(head);
      if (options.bodyBytes === 0) return;
      timer = setInterval(() => {
        if (socket.destroyed || bodySent >= options.bodyBytes) return clearInterval(timer);
        socket.write("x");
        bodySent++;
      }, options.byteEveryMs);
    });
  });
}

function postHead(path: string, contentLength: number, token?: string): string {
  return [
    `POST ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Content-Type: application/json",
    `Content-Length: ${contentLength}`,
    ...(token ? [`Authorization: Bearer ${token}`] : []),
    "",
    "",
  ].join("\r\n");
}

describe("HTTP timeouts", () => {
  it("derives Node's deadlines from the settings, the headers one never past the request one", () => {
    expect(serverTimeouts({ requestTimeoutSec: 5, headersTimeoutSec: 10, keepAliveTimeoutSec: 72 })).toEqual({
      requestTimeout: 5000,
      keepAliveTimeout: 72_000,
      node: { requestTimeout: 5000, headersTimeout: 5000, connectionsCheckingInterval: 1000 },
    });
    expect(
      serverTimeouts({ requestTimeoutSec: 1.5, headersTimeoutSec: 1, keepAliveTimeoutSec: 1 }).node,
    ).toEqual({
      requestTimeout: 1500,
      headersTimeout: 1000,
      connectionsCheckingInterval: 250,
    });
  });

  it("cuts off a body trickled a byte at a time, even with a valid token", async () => {
    controller = await startTestController({ settings: { requestTimeoutSec: 1.5, headersTimeoutSec: 1 } });
    const slow = await rawClient(controller.url, postHead("/v1/vms", 100, controller.adminToken), {
      bodyBytes: 100,
      byteEveryMs: 250,
      deadlineMs: 10_000,
    });
    expect(slow.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(slow.bodySent).toBeLessThan(100);
    // The deadline plus Node's check interval (a quarter of the headers timeout).
    expect(slow.closedAfterMs).toBeGreaterThanOrEqual(1400);
    expect(slow.closedAfterMs).toBeLessThan(5000);
    expect(await controller.app.nbfleet.store.vms.names()).toEqual([]);
  });

  it("answers 401 to a request without a token before reading its body, and closes", async () => {
    controller = await startTestController({ settings: { requestTimeoutSec: 30 } });
    const started = Date.now();
    const anonymous = await rawClient(controller.url, postHead("/v1/vms", 100), {
      bodyBytes: 0,
      byteEveryMs: 0,
      deadlineMs: 5_000,
    });
    expect(anonymous.received).toMatch(/^HTTP\/1\.1 401 /);
    expect(anonymous.received).toContain("NBF_AUTH_REQUIRED");
    expect(anonymous.received.toLowerCase()).toContain("connection: close");
    // Not the request timeout: the answer and the close come at once, with no body sent.
    expect(Date.now() - started).toBeLessThan(2000);
    // The same for an unknown route: the unread body does not keep the connection.
    const unknown = await rawClient(controller.url, postHead("/v1/nowhere", 100), {
      bodyBytes: 100,
      byteEveryMs: 250,
      deadlineMs: 5_000,
    });
    expect(unknown.received).toMatch(/^HTTP\/1\.1 404 /);
    expect(unknown.bodySent).toBeLessThan(10);
  });

  it("closes a connection that sends no headers within the headers timeout", async () => {
    controller = await startTestController({ settings: { requestTimeoutSec: 5, headersTimeoutSec: 1 } });
    const silent = await rawClient(controller.url, "", { bodyBytes: 0, byteEveryMs: 0, deadlineMs: 8_000 });
    expect(silent.closedAfterMs).toBeLessThan(3000);
    const halfHead = await rawClient(controller.url, "GET /healthz HTTP/1.1\r\nHost: x\r\n", {
      bodyBytes: 0,
      byteEveryMs: 0,
      deadlineMs: 8_000,
    });
    expect(halfHead.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(halfHead.closedAfterMs).toBeLessThan(3000);
  });

  it("still takes a large upload sent at a normal pace", async () => {
    controller = await startTestController({
      settings: { requestTimeoutSec: 3, headersTimeoutSec: 1, bodyLimitBytes: 16 * 1024 * 1024 },
    });
    const names = Array.from({ length: 100_000 }, (_, i) => `vm-${i}-${"a".repeat(50)}`);
    const body = JSON.stringify({ action: "notebook.restart", selector: { names } });
    expect(body.length).toBeGreaterThan(5 * 1024 * 1024);
    const response = await fetch(`${controller.url}/v1/operations`, {
      method: "POST",
      headers: { authorization: `Bearer ${controller.adminToken}`, "content-type": "application/json" },
      body,
    });
    // The whole body was read and judged: the names are well-formed but no VM has them.
    expect(response.status).toBe(404);
    const { error } = (await response.json()) as { error: { code: string; details: { name: string } } };
    expect(error.code).toBe("NBF_VM_NOT_FOUND");
    expect(error.details.name.split(", ")).toHaveLength(names.length);
  });
});
