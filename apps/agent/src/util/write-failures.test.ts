import { describe, expect, it } from "vitest";
import { WriteFailures, type WriteReport, errorCodeOf } from "./write-failures.js";

const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });

describe("WriteFailures", () => {
  it("reports a failing kind of write at most once a minute, with the count left out, and its recovery once", () => {
    let now = 0;
    const reports: WriteReport[] = [];
    const failures = new WriteFailures(
      (r) => reports.push(r),
      60_000,
      () => now,
    );
    for (let i = 0; i < 5; i++) failures.failed("event log", "/d/events.jsonl", enospc());
    failures.failed("agent log", "/d/agent.log", enospc());
    expect(reports.map((r) => [r.kind, r.data.what])).toEqual([
      ["storage.write_failed", "event log"],
      ["storage.write_failed", "agent log"],
    ]);
    now = 60_000;
    failures.failed("event log", "/d/events.jsonl", enospc());
    expect(reports.at(-1)?.message).toBe(
      "cannot write the event log (/d/events.jsonl): ENOSPC: no space left on device, write (5 failures since the last report)",
    );
    expect(failures.problems()).toMatchObject([
      { what: "event log", code: "ENOSPC", failures: 6, since: new Date(0).toISOString() },
      { what: "agent log", code: "ENOSPC", failures: 1 },
    ]);
    failures.succeeded("event log");
    failures.succeeded("event log");
    expect(reports.filter((r) => r.kind === "storage.write_resumed")).toHaveLength(1);
    expect(reports.at(-1)?.message).toBe(
      "writing the event log works again after 6 failed attempt(s) since 1970-01-01T00:00:00.000Z",
    );
    expect(failures.problems().map((p) => p.what)).toEqual(["agent log"]);
  });

  it("finds the errno code of a wrapped error", () => {
    expect(errorCodeOf(new Error("outer", { cause: enospc() }))).toBe("ENOSPC");
    expect(errorCodeOf("text")).toBe("EUNKNOWN");
  });
});
