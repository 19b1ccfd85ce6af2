import { describe, expect, it } from "vitest";
import { IN_LIST_MAX, inLists, padToPowerOfTwo, powerOfTwoChunks } from "./chunks.js";

describe("statement chunks", () => {
  it("splits rows into max-sized chunks and the rest into descending powers of two, keeping order", () => {
    const rows = Array.from({ length: 300 }, (_, i) => i);
    const chunks = [...powerOfTwoChunks(rows, 128)];
    expect(chunks.map((c) => c.length)).toEqual([128, 128, 32, 8, 4]);
    expect(chunks.flat()).toEqual(rows);
    expect([...powerOfTwoChunks([], 128)]).toEqual([]);
    expect([...powerOfTwoChunks([1], 128)]).toEqual([[1]]);
  });

  it("pads an in-list to a power of two with its last value", () => {
    expect(padToPowerOfTwo([1, 2, 3])).toEqual([1, 2, 3, 3]);
    expect(padToPowerOfTwo([7])).toEqual([7]);
    expect(padToPowerOfTwo([1, 2, 3, 4, 5])).toHaveLength(8);
  });

  it("cuts values into padded in-lists of at most the maximum, every value in one of them", () => {
    const values = Array.from({ length: IN_LIST_MAX + 3 }, (_, i) => i);
    const lists = [...inLists(values)];
    expect(lists.map((l) => l.length)).toEqual([IN_LIST_MAX, 4]);
    expect(new Set(lists.flat())).toEqual(new Set(values));
    expect([...inLists([1, 2, 3], 2)]).toEqual([[1, 2], [3]]);
    expect([...inLists([])]).toEqual([]);
  });
});
