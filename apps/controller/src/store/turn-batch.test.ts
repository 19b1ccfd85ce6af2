import { describe, expect, it } from "vitest";
import { TurnBatch, batchedLookup } from "./turn-batch.js";

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("TurnBatch", () => {
  it("handles one turn's items together and answers each with its own", async () => {
    const batches: number[][] = [];
    const batch = new TurnBatch<number, number>(async (items) => {
      batches.push(items);
      return items.map((n) => n * 10);
    });
    const answers = await Promise.all([batch.add(1), batch.add(2), batch.add(3)]);
    expect(answers).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it("handles one batch at a time: what comes during one goes together in the next", async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    let active = 0;
    let most = 0;
    const batch = new TurnBatch<number, number>(async (items) => {
      batches.push(items);
      active++;
      most = Math.max(most, active);
      if (batches.length === 1)
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      active--;
      return items;
    });
    const first = batch.add(1);
    await turn();
    const later = [batch.add(2)];
    await turn();
    later.push(batch.add(3));
    await turn();
    expect(batches).toEqual([[1]]);
    release();
    expect(await Promise.all([first, ...later])).toEqual([1, 2, 3]);
    expect(batches).toEqual([[1], [2, 3]]);
    expect(most).toBe(1);
  });

  it("rejects a failed batch's items and goes on with the next", async () => {
    let calls = 0;
    const batch = new TurnBatch<number, number>(async (items) => {
      calls++;
      if (calls === 1) throw new Error("store down");
      return items;
    });
    await expect(batch.add(1)).rejects.toThrow("store down");
    expect(await batch.add(2)).toBe(2);
  });
});

describe("batchedLookup", () => {
  it("asks once for a turn's keys, each key once, and answers every caller with its own", async () => {
    const asked: string[][] = [];
    const lookup = batchedLookup(async (keys: string[]) => {
      asked.push(keys);
      return new Map(keys.filter((k) => k !== "missing").map((k) => [k, k.toUpperCase()]));
    });
    const answers = await Promise.all(["a", "b", "a", "missing"].map(lookup));
    expect(answers).toEqual(["A", "B", "A", undefined]);
    expect(asked).toEqual([["a", "b", "missing"]]);
  });

  it("rejects every caller of a batch whose query failed, and the next batch asks again", async () => {
    let fail = true;
    const lookup = batchedLookup(async (keys: string[]) => {
      if (fail) throw new Error("database unreachable");
      return new Map(keys.map((k) => [k, 1]));
    });
    const failed = await Promise.allSettled([lookup("a"), lookup("b")]);
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    fail = false;
    expect(await lookup("a")).toBe(1);
  });
});
