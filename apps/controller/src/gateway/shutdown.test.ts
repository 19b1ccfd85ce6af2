/**
 * The controller's shutdown ends agent connections that are still in their handshake. Node's
 * HTTP server closes only when every socket has, upgraded ones included: a connection between
 * its upgrade and its welcome, which the gateway did not count among its sessions, was left
 * open and held `close()` (the authorization matrix's flake: an agent reconnecting just as the
 * test closed its controller), and one whose welcome finished after the shutdown was welcomed
 * by a controller already gone.
 */
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { CloseCode } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { openRaw, rawHello } from "@nbfleet/testkit/raw-agent";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SHUTDOWN_REPORT_EVERY_MS } from "../wiring/shutdown-watch.js";

let controller: TestController | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await controller?.close();
  controller = undefined;
});

/** Resolves with what happened first: the promise, or the deadline. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | "timed out"> {
  return Promise.race([promise, sleep(ms, "timed out" as const, { ref: false })]);
}

async function closeNow(): Promise<"closed" | "timed out"> {
  const closing = controller!.close().then(() => "closed" as const);
  controller = undefined;
  return within(closing, 5000);
}

describe("agent connections at shutdown", () => {
  it("ends a connection whose hello has not come yet, at once", async () => {
    // A hello timeout far beyond the deadline below: only the shutdown can end it in time.
    controller = await startTestController({ settings: { helloTimeoutSec: 60 } });
    const [vm] = await seedVms(controller.app, { count: 1 });
    const raw = openRaw(controller.url, vm!.credential);
    await raw.opened;

    expect(await closeNow()).toBe("closed");
    expect(await within(raw.closed, 2000)).toMatchObject({ code: CloseCode.goingAway });
  });

  it("ends a connection whose welcome is waiting for the store, and does not welcome it after", async () => {
    controller = await startTestController();
    const [vm] = await seedVms(controller.app, { count: 1 });
    const { store, gateway } = controller.app.nbfleet;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const existing = store.vms.existing.bind(store.vms);
    const held = vi.spyOn(store.vms, "existing").mockImplementation(async (names) => {
      await gate;
      return existing(names);
    });
    const raw = openRaw(controller.url, vm!.credential);
    await raw.opened;
    raw.ws.send(rawHello({ agent: { version: "0.0.0", hostname: vm!.name, os: "linux", arch: "x64" } }));
    await vi.waitFor(() => expect(held).toHaveBeenCalled());

    const shutdown = vi.spyOn(gateway, "close");
    const closed = closeNow();
    await vi.waitFor(() => expect(shutdown).toHaveBeenCalled());
    release();
    expect(await closed).toBe("closed");
    expect(await within(raw.closed, 2000)).toMatchObject({ code: CloseCode.goingAway });
    expect(raw.messages.filter((m) => (m as { type?: string }).type === "welcome")).toEqual([]);
    expect(gateway.isConnected(vm!.name)).toBe(false);
  });

  it("says what it is waiting for while a connection nobody closed holds it", async () => {
    const lines: { msg: string; openConnections?: number; peers?: string[] }[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    controller = await startTestController({ logger: pino({ level: "warn" }, sink) });
    const [vm] = await seedVms(controller.app, { count: 1 });
    const raw = openRaw(controller.url, vm!.credential);
    await raw.opened;
    // A shutdown that forgets this connection, as the gateway's forgot those in their handshake.
    vi.spyOn(controller.app.nbfleet.gateway, "close").mockImplementation(() => {});
    const closing = controller.close();
    controller = undefined;

    const port = (raw.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
    await vi.waitFor(
      () => {
        const said = lines.find((l) => l.msg.startsWith("shutdown waiting for 1 open connection"));
        expect(said?.peers).toEqual([`127.0.0.1:${port}`]);
      },
      { timeout: SHUTDOWN_REPORT_EVERY_MS * 3 },
    );
    raw.ws.terminate();
    expect(
      await within(
        closing.then(() => "closed" as const),
        5000,
      ),
    ).toBe("closed");
  });
});
