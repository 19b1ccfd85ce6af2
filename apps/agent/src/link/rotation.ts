/**
 * Which controller the next dial goes to when several are given (replicas): the first at
 * start, then the next one after every ended connection, whatever ended it (a refused or
 * failed dial, a refusal, a dropped or closed connection), round and round.
 *
 * The reconnect backoff grows per full round, not per attempt: every try of a round waits one
 * jittered step under the same ceiling, and the ceiling doubles once each URL has had its try.
 * So a dead replica costs one backoff step before the next URL is dialed (after a stable
 * connection that step is at most initialBackoffMs, 100 ms by default), and an agent with N
 * URLs that are all down dials about as often as an agent with one (each controller N times
 * less often). The jitter stays per attempt, so the agents of a replica that went away do not
 * reach the others in one wave. With one URL every try ends a round: the backoff is what it
 * always was.
 */
export class Rotation<T> {
  private index = 0;
  private triedThisRound = 0;

  constructor(private readonly entries: readonly T[]) {
    if (entries.length === 0) throw new Error("a rotation needs at least one entry");
  }

  get current(): T {
    return this.entries[this.index]!;
  }

  get all(): readonly T[] {
    return this.entries;
  }

  /** Moves to the next entry after an ended connection; true when that ended a full round. */
  moveOn(): boolean {
    this.index = (this.index + 1) % this.entries.length;
    this.triedThisRound++;
    if (this.triedThisRound < this.entries.length) return false;
    this.triedThisRound = 0;
    return true;
  }

  /** A connection held (it was stable): the next failures start a new round. */
  startRound(): void {
    this.triedThisRound = 0;
  }
}
