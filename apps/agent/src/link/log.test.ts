import { RecordingLog } from "@nbfleet/testkit/recording-log";
import { describe, expect, it } from "vitest";
import { stderrLinkLog, teeLinkLog } from "./log.js";

describe("link logs", () => {
  it("prints one timestamped line per message, tagged with its level", () => {
    const lines: string[] = [];
    stderrLinkLog((line) => lines.push(line)).warn("the connection to the controller was lost");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z warn link: the connection to the controller was lost\n$/);
  });

  it("tees every message to each log at its level", () => {
    const a = new RecordingLog();
    const b = new RecordingLog();
    const both = teeLinkLog(a, b);
    both.info("one");
    both.error("two");
    for (const log of [a, b])
      expect(log.lines.map((l) => `${l.level} ${l.message}`)).toEqual(["info one", "error two"]);
  });
});
