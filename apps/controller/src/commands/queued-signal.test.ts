import { describe, expect, it } from "vitest";
import { parseQueuedSignalId, queuedSignalId } from "./service.js";

describe("command.queued signal ids", () => {
  it("carry the command's id and its VM's name, and read back", () => {
    const entry = queuedSignalId({ id: "op_0mx9abc.17", vmName: "web-2" });
    expect(entry).toBe("op_0mx9abc.17 web-2");
    expect(parseQueuedSignalId(entry)).toEqual({ id: "op_0mx9abc.17", vmName: "web-2" });
  });

  it("treat a bare id (a resync's) or a malformed entry as unaddressed", () => {
    expect(parseQueuedSignalId("cmd_0mx9abc")).toBeNull();
    expect(parseQueuedSignalId(" web-2")).toBeNull();
    expect(parseQueuedSignalId("cmd_0mx9abc ")).toBeNull();
  });
});
