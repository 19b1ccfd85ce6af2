import { describe, expect, it } from "vitest";
import { parseLimit } from "../components/limits.js";
import { eventIdAt } from "../live/events.js";
import { filtersOf, filtersToSearch, listQuery, selectorOf, sortedBy } from "./filters.js";

const NONE = { label: "", health: "", state: "", limit: 100, sort: "name", order: "asc" } as const;

describe("fleet filters", () => {
  it("reads the URL query, ignoring values the API would refuse", () => {
    expect(
      filtersOf("?label=team%3Dml%2Cgpu&health=unhealthy&state=running&limit=250&sort=restarts&order=desc"),
    ).toEqual({
      label: "team=ml,gpu",
      health: "unhealthy",
      state: "running",
      limit: 250,
      sort: "restarts",
      order: "desc",
    });
    // Any page size the API takes, from a shared URL.
    expect(filtersOf("?limit=2").limit).toBe(2);
    for (const bad of [
      "?health=sick&state=flying&limit=0&sort=colour&order=up",
      "?limit=1001",
      "?limit=2.5",
    ]) {
      expect(filtersOf(bad), bad).toEqual(NONE);
    }
  });

  it("writes the filters and sort back to a query that reads the same", () => {
    const filters = {
      label: "a=b,c!=d e,!f",
      health: "degraded",
      state: "stopped",
      limit: 500,
      sort: "lastSeen",
      order: "desc",
    } as const;
    const search = filtersToSearch(filters);
    expect(filtersOf(`?${search}`)).toEqual(filters);
    expect(filtersToSearch(NONE)).toBe("");
  });

  it("sends the label expression whole and the sort to the list API", () => {
    const url = listQuery(
      { ...NONE, label: " team=ml , note!=<a&b>=c,!gpu ", sort: "health", order: "desc" },
      "cur/1",
    );
    const query = new URL(url, "http://x").searchParams;
    expect(query.get("labels")).toBe("team=ml , note!=<a&b>=c,!gpu");
    expect(query.getAll("label")).toEqual([]);
    expect(query.get("sort")).toBe("health");
    expect(query.get("order")).toBe("desc");
    expect(query.get("cursor")).toBe("cur/1");
    expect(query.get("limit")).toBe("100");
    const plain = new URL(listQuery(NONE, null), "http://x").searchParams;
    expect([...plain.keys()]).toEqual(["limit"]);
  });

  it("sorts by a header: ascending first, the other way on a second click", () => {
    expect(sortedBy(NONE, "restarts")).toEqual({ sort: "restarts", order: "asc" });
    expect(sortedBy({ ...NONE, sort: "restarts", order: "asc" }, "restarts")).toEqual({
      sort: "restarts",
      order: "desc",
    });
    expect(sortedBy({ ...NONE, sort: "restarts", order: "desc" }, "restarts")).toEqual({
      sort: "restarts",
      order: "asc",
    });
    expect(sortedBy({ ...NONE, sort: "health", order: "desc" }, "name")).toEqual({
      sort: "name",
      order: "asc",
    });
  });

  it("builds the operation selector for 'all matching the filter'", () => {
    expect(selectorOf(NONE)).toEqual({ all: true });
    expect(selectorOf({ ...NONE, label: " a=b, c!=d ", health: "unhealthy" })).toEqual({
      labels: "a=b, c!=d",
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
