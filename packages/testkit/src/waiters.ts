/**
 * Waiting on a record instead of sleeping: whatever records something calls `notify()`, and a
 * waiter re-checks its condition then, with a deadline that names what it waited for.
 */
export class Waiters {
  private readonly checks = new Set<() => void>();

  notify(): void {
    for (const check of [...this.checks]) check();
  }

  /** Resolves with the first truthy value of `probe`, checked now and after every notify. */
  until<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
    const first = probe();
    if (first) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = probe();
        if (!value) return;
        clearTimeout(timer);
        this.checks.delete(check);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.checks.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.checks.add(check);
    });
  }
}
