import { describe, expect, it } from "vitest";
import { parseLimit } from "../components/limits.js";
import { eventIdAt } from "../live/events.js";
import { filtersOf, filtersToSearch, labelPairs, listQuery, selectorOf } from "./filters.js";

describe("fleet filters", () => {
  it("reads the URL query, ignoring values the API would refuse", () => {
    expect(filtersOf("?label=team%3Dml&health=unhealthy&state=running&limit=250")).toEqual({
      label: "team=ml",
      health: "unhealthy",
      state: "running",
      limit: 250,
    });
    expect(filtersOf("?health=sick&state=flying&limit=7")).toEqual({
      label: "",
      health: "",
      state: "",
      limit: 100,
    });
  });

  it("writes the filters back to a query that reads the same", () => {
    const filters = { label: "a=b,c=d e", health: "degraded", state: "stopped", limit: 500 } as const;
    const search = filtersToSearch(filters);
    expect(filtersOf(`?${search}`)).toEqual(filters);
    expect(filtersToSearch({ label: "", health: "", state: "", limit: 100 })).toBe("");
  });

  it("turns label pairs into repeated label= parameters, values with = and odd characters kept", () => {
    const url = listQuery({ label: " team=ml , note=<a&b>=c ", health: "", state: "", limit: 100 }, "cur/1");
    const query = new URL(url, "http://x").searchParams;
    expect(query.getAll("label")).toEqual(["team=ml", "note=<a&b>=c"]);
    expect(query.get("cursor")).toBe("cur/1");
    expect(query.get("limit")).toBe("100");
  });

  it("refuses label expressions the list API cannot filter by, naming the part", () => {
    expect(() => labelPairs("team!=ml")).toThrow(/"team!=ml"/);
    expect(() => labelPairs("a=b,!gpu")).toThrow(/"!gpu"/);
    expect(() => labelPairs("gpu")).toThrow(/key=value/);
    expect(() => labelPairs("=x")).toThrow(/"=x"/);
    expect(labelPairs("")).toEqual([]);
  });

  it("builds the operation selector for 'all matching the filter'", () => {
    expect(selectorOf({ label: "", health: "", state: "", limit: 100 })).toEqual({ all: true });
    expect(selectorOf({ label: "a=b, c=d", health: "unhealthy", state: "", limit: 100 })).toEqual({
      labels: "a=b,c=d",
      health: ["unhealthy"],
    });
  });
});

describe("bulk limits", () => {
  it("takes a count at or above the minimum, or a share", () => {
    expect(parseLimit(" 3 ", "Max concurrency", 1)).toBe(3);
    expect(parseLimit("0", "Max errors", 0)).toBe(0);
    expect(parseLimit("12.5%", "Max concurrency", 1)).toBe("12.5%");
  });

  it("names the field and the value it refuses", () => {
    expect(() => parseLimit("0", "Max concurrency", 1)).toThrow(/Max concurrency .*"0"/);
    expect(() => parseLimit("-1", "Max errors", 0)).toThrow(/Max errors .*"-1"/);
    expect(() => parseLimit("lots", "Max errors", 0)).toThrow(/"lots"/);
  });
});

describe("event ids from a time", () => {
  it("sort with time and before any event of that millisecond", () => {
    const at = Date.parse("2026-12-04T14:00:00Z");
    expect(eventIdAt(at) < eventIdAt(at + 1)).toBe(true);
    // The controller's ids: evt_<ms base36, 9 chars><seq, 3 chars><random, 10 chars>.
    const sameMs = `evt_${at.toString(36).padStart(9, "0")}000aaaaaaaaaa`;
    const before = `evt_${(at - 1).toString(36).padStart(9, "0")}zzzzzzzzzzzzz`;
    expect(eventIdAt(at) < sameMs).toBe(true);
    expect(before < eventIdAt(at)).toBe(true);
  });
});
