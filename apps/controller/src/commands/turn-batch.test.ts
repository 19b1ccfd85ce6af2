import { describe, expect, it } from "vitest";
import { TurnBatch } from "./turn-batch.js";

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
