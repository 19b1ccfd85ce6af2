/** A small JSON client over keep-alive HTTP/1.1 connections, for timing the controller's API. */
import http from "node:http";

export interface JsonResponse<T> {
  status: number;
  body: T;
}

export class JsonClient {
  private readonly agent: http.Agent;

  constructor(
    private readonly baseUrl: string,
    private readonly token: string | null,
    maxSockets = 64,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  request<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<JsonResponse<T>> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (payload !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = http.request(new URL(path, this.baseUrl), { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : null) as T });
          } catch {
            reject(
              new Error(
                `${method} ${path}: ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`,
              ),
            );
          }
        });
        res.on("error", reject);
      });
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer within 60 s`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Like `request`, but anything other than `expected` is an error naming the route and the body. */
  async expect<T>(
    expected: number,
    method: "GET" | "POST" | "DELETE",
    path: string,
    body?: unknown,
  ): Promise<T> {
    const res = await this.request<T>(method, path, body);
    if (res.status !== expected)
      throw new Error(
        `${method} ${path}: expected ${expected}, got ${res.status}: ${JSON.stringify(res.body)}`,
      );
    return res.body;
  }

  /**
   * Opens `connections` keep-alive connections (concurrent GET /healthz) so that timed requests
   * reuse them. Node accepts one new connection per event-loop turn, so a burst of fresh
   * connections to a busy server waits for its turns; steady clients keep theirs open.
   */
  async warm(connections: number): Promise<void> {
    await Promise.all(Array.from({ length: connections }, () => this.expect(200, "GET", "/healthz")));
  }

  close(): void {
    this.agent.destroy();
  }
}
