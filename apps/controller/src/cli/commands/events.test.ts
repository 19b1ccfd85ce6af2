import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { spawnCli } from "@nbfleet/testkit/processes";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import type { FleetEvent } from "../../events/bus.js";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

describe("nbfleet events -f", () => {
  it("resumes after the last event it printed when the controller lets it go for falling behind", async () => {
    controller = await startTestController({ settings: { eventStreamMaxBufferBytes: 64 * 1024 } });
    const { bus } = controller.app.nbfleet;
    let subscriptions = 0;
    const subscribe = bus.subscribe.bind(bus);
    bus.subscribe = (listener) => {
      subscriptions++;
      return subscribe(listener);
    };
    const emit = (count: number, bytes: number) =>
      Array.from({ length: count }, (_, seq) =>
        bus.emit({
          vmName: null,
          kind: "test.cli",
          message: `event ${seq}`,
          data: { seq, pad: "x".repeat(bytes) },
        }),
      );
    const emitted: FleetEvent[] = emit(5, 10);

    const cli = spawnCli(["--json", "events", "-f", "--kind", "test."], {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        PATH: process.env.PATH,
        HOME: tmpdir(),
        NBFLEET_URL: controller.url,
        NBFLEET_TOKEN: controller.adminToken,
      },
    });
    let stderr = "";
    cli.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    try {
      await eventually(
        async () => bus.subscriberCount,
        (n) => n === 1,
        20_000,
      );
      // Nobody reads the CLI's output: once its pipe is full it blocks, stops reading the
      // stream, and 10 MB of events later the controller lets it go.
      for (let batch = 0; batch < 20; batch++) {
        emitted.push(...emit(500, 1000));
        await new Promise((resolve) => setImmediate(resolve));
      }
      emitted.push(...emit(1, 0));
      const lastId = emitted.at(-1)!.id;
      const printed: string[] = [];
      const lines = createInterface({ input: cli.stdout! });
      lines.on("line", (line) => printed.push((JSON.parse(line) as FleetEvent).id));
      await eventually(
        async () => printed.at(-1),
        (id) => id === lastId,
        30_000,
        100,
      );
      expect(subscriptions).toBeGreaterThanOrEqual(2);
      expect(printed).toEqual(emitted.map((e) => e.id));
      expect(stderr).toBe("");
    } finally {
      cli.kill("SIGKILL");
    }
  }, 60_000);
});
