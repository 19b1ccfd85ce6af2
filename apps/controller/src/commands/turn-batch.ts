/**
 * Gathers the items of one event-loop turn and handles them together (e.g. the acks and
 * results thousands of agents send at once, written in one transaction instead of one commit
 * each). Each `add` resolves with its own item's answer once the batch is done.
 */
export class TurnBatch<T, R> {
  private items: T[] = [];
  private waiting: Array<{ resolve: (value: R) => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;

  constructor(private readonly handle: (items: T[]) => Promise<R[]>) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.items.push(item);
      this.waiting.push({ resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => void this.run());
    });
  }

  private async run(): Promise<void> {
    const items = this.items;
    const waiting = this.waiting;
    this.items = [];
    this.waiting = [];
    this.scheduled = false;
    try {
      const answers = await this.handle(items);
      waiting.forEach((w, i) => w.resolve(answers[i]!));
    } catch (error) {
      for (const w of waiting) w.reject(error);
    }
  }
}
