/**
 * A Server-Sent Events client for tests over a real socket: collects the events it reads
 * (`id` and `data`), can stop reading (`pause`, so the server's writes pile up like behind a
 * stalled viewer) and go on (`resume`), and says when the server ended the stream.
 */
import { type ClientRequest, type IncomingMessage, request } from "node:http";
import { createParser } from "eventsource-parser";

export interface SseEvent {
  id: string;
  data: string;
}

export class SseReader {
  readonly events: SseEvent[] = [];
  /** Resolves with the status once the response headers arrived. */
  readonly ready: Promise<number>;
  /** Resolves when the stream ended for any reason (server closed it, error, `close()`). */
  readonly ended: Promise<void>;
  private readonly req: ClientRequest;
  private res: IncomingMessage | undefined;
  private paused = false;
  private done = false;

  constructor(
    url: string,
    options: { token: string; lastEventId?: string; paused?: boolean; keepData?: boolean },
  ) {
    this.paused = options.paused ?? false;
    let endedResolve: () => void = () => {};
    this.ended = new Promise((resolve) => {
      endedResolve = resolve;
    });
    const finish = () => {
      this.done = true;
      endedResolve();
    };
    this.req = request(url, {
      agent: false,
      headers: {
        authorization: `Bearer ${options.token}`,
        accept: "text/event-stream",
        ...(options.lastEventId ? { "last-event-id": options.lastEventId } : {}),
      },
    });
    this.ready = new Promise((resolve, reject) => {
      this.req.on("response", (res) => {
        this.res = res;
        res.setEncoding("utf8");
        // Events dispatch on a blank line; a block cut off by a closed connection is dropped.
        const parser = createParser({
          onEvent: ({ id, data }) => {
            if (id !== undefined) this.events.push({ id, data: (options.keepData ?? true) ? data : "" });
          },
        });
        res.on("data", (chunk: string) => parser.feed(chunk));
        res.on("end", finish);
        res.on("close", finish);
        res.on("error", finish);
        if (this.paused) res.pause();
        resolve(res.statusCode ?? 0);
      });
      this.req.on("error", (error) => {
        finish();
        reject(error);
      });
    });
    this.req.end();
  }

  get isEnded(): boolean {
    return this.done;
  }

  get lastId(): string | undefined {
    return this.events.at(-1)?.id;
  }

  pause(): void {
    this.paused = true;
    this.res?.pause();
  }

  resume(): void {
    this.paused = false;
    this.res?.resume();
  }

  close(): void {
    this.req.destroy();
  }
}
