/**
 * The last TERMINAL_REPLAY_BYTES of a session's output, as the frames it came in (channel
 * kept), so a client that attaches again sees the screen it lost. Old bytes fall off the front.
 */
import { TERMINAL_REPLAY_BYTES, type TerminalChannel } from "@nbfleet/shared";

export interface ReplayFrame {
  channel: TerminalChannel;
  data: Buffer;
}

export class ReplayBuffer {
  private frames: ReplayFrame[] = [];
  private bytes = 0;

  constructor(private readonly capacity = TERMINAL_REPLAY_BYTES) {}

  get size(): number {
    return this.bytes;
  }

  push(channel: TerminalChannel, data: Buffer): void {
    if (data.length === 0) return;
    const kept = data.length > this.capacity ? data.subarray(data.length - this.capacity) : data;
    this.frames.push({ channel, data: kept });
    this.bytes += kept.length;
    while (this.bytes > this.capacity) {
      const first = this.frames[0]!;
      const excess = this.bytes - this.capacity;
      if (first.data.length <= excess) {
        this.frames.shift();
        this.bytes -= first.data.length;
      } else {
        first.data = first.data.subarray(excess);
        this.bytes -= excess;
      }
    }
  }

  snapshot(): readonly ReplayFrame[] {
    return this.frames;
  }
}
