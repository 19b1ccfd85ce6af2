import { describe, expect, it } from "vitest";
import { CachedFigure } from "./cached-figure.js";

describe("CachedFigure", () => {
  it("reads at most once per age, and after invalidate waits for a fresh read, dropping one started before", async () => {
    let source = 1;
    let reads = 0;
    let release: (() => void) | null = null;
    const figure = new CachedFigure(
      async () => {
        reads++;
        const value = source;
        if (value === 2)
          await new Promise<void>((resolve) => {
            release = resolve;
          });
        return value;
      },
      { maxAgeMs: 60_000, onError: (error) => expect.unreachable(String(error)) },
    );
    expect(await figure.get()).toBe(1);
    expect(await figure.get()).toBe(1);
    expect(reads).toBe(1);

    // A read of the old value is under way when the source changes and the figure is invalidated.
    source = 2;
    figure.invalidate();
    const stale = figure.get();
    await new Promise((resolve) => setTimeout(resolve, 10));
    source = 3;
    figure.invalidate();
    expect(await figure.get()).toBe(3);
    release!();
    await stale;
    expect(await figure.get()).toBe(3);
    expect(reads).toBe(3);
  });
});
