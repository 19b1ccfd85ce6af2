import { CloseCode, PROTOCOL_VERSION, agentArtifactFilePath } from "@nbfleet/shared";
import { handMadeArtifact, publishArtifact } from "@nbfleet/testkit/agent-versions";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { openRaw, rawHello } from "@nbfleet/testkit/raw-agent";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
/** An agent of another protocol major is refused with the agent to fetch named in the close. */
import { afterEach, describe, expect, it } from "vitest";
import { protocolRefusalReason } from "./protocol-refusal.js";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

describe("refusing another protocol major", () => {
  it("names the newest published agent and where to download it", async () => {
    controller = await startTestController();
    const [vm] = await seedVms(controller.app, { count: 1, prefix: "proto" });
    const refuse = async () => {
      const raw = openRaw(controller!.url, vm!.credential);
      await raw.opened;
      raw.ws.send(rawHello({ v: "2.0" }));
      return raw.closed;
    };
    const bare = await refuse();
    expect(bare.code).toBe(CloseCode.protocolVersion);
    expect(bare.reason).toContain("2.0");
    expect(bare.reason).toContain(`controller speaks ${PROTOCOL_VERSION}`);
    for (const version of ["1.2.0", "1.3.0"])
      await publishArtifact(
        { url: controller.url, token: controller.adminToken },
        await handMadeArtifact(version, "process.exit(0)"),
      );
    const told = await refuse();
    expect(told.code).toBe(CloseCode.protocolVersion);
    expect(told.reason).toBe(
      `fetch agent 1.3.0 at ${agentArtifactFilePath("1.3.0")}: protocol 2.0 unsupported (controller speaks ${PROTOCOL_VERSION})`,
    );
    // The named file is there for the taking, without a token.
    const file = await fetch(`${controller.url}${agentArtifactFilePath("1.3.0")}`);
    expect(file.status).toBe(200);
  }, 60_000);

  it("keeps the version and its path within a close reason's 123 bytes", () => {
    const long = `1.0.0-${"x".repeat(40)}`;
    const reason = protocolRefusalReason("2.0", long);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
    expect(reason.startsWith(`fetch ${agentArtifactFilePath(long)}: protocol 2.0`)).toBe(true);
    expect(protocolRefusalReason("2.0", null)).toContain("no agent artifact is published here");
  });
});
