/**
 * Gathers items and handles them together (e.g. the results thousands of agents send at once,
 * written in one transaction instead of one commit each). One batch is handled at a time: what
 * arrives in one event-loop turn goes together, and what arrives while a batch is being handled
 * goes with the next one, so a quiet store writes at once and a busy one in larger batches.
 * Each `add` resolves with its own item's answer once its batch is done.
 */
export class TurnBatch<T, R> {
  private items: T[] = [];
  private waiting: Array<{ resolve: (value: R) => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;
  private running = false;

  constructor(private readonly handle: (items: T[]) => Promise<R[]>) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.items.push(item);
      this.waiting.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.items.length === 0) return;
    this.scheduled = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    const items = this.items;
    const waiting = this.waiting;
    this.items = [];
    this.waiting = [];
    this.scheduled = false;
    this.running = true;
    try {
      const answers = await this.handle(items);
      waiting.forEach((w, i) => w.resolve(answers[i]!));
    } catch (error) {
      for (const w of waiting) w.reject(error);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}

/**
 * A lookup by key whose calls in one event-loop turn become one query for all their keys
 * (duplicates asked once): a thousand agents reconnecting at once cost a few queries instead of
 * a thousand round trips, each waiting for a pooled connection. `loadMany` answers the keys it
 * found; a key it does not answer resolves undefined.
 */
export function batchedLookup<K, V>(
  loadMany: (keys: K[]) => Promise<Map<K, V>>,
): (key: K) => Promise<V | undefined> {
  const batch = new TurnBatch(async (keys: K[]) => {
    const found = await loadMany([...new Set(keys)]);
    return keys.map((key) => found.get(key));
  });
  return (key) => batch.add(key);
}
