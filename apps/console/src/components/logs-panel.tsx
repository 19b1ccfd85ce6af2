/**
 * The notebook's (or agent's) log following live: `GET /v1/vms/{name}/logs?follow=1` read as an
 * NDJSON stream (`{"line"}` records, at most one `{"end"}` saying why it stopped).
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, failureOf, vmPath } from "../api/client.js";

const KEEP_LINES = 1000;
type Source = "notebook" | "agent";

export function LogsPanel({ name }: { name: string }) {
  const [source, setSource] = useState<Source>("notebook");
  const [lines, setLines] = useState<string[]>([]);
  const [status, setStatus] = useState("connecting…");
  const [attempt, setAttempt] = useState(0);
  const box = useRef<HTMLPreElement>(null);

  // biome-ignore lint/correctness/useExhaustiveDependencies: attempt is the Reconnect button
  useEffect(() => {
    const abort = new AbortController();
    setLines([]);
    setStatus("connecting…");
    void follow(
      `${vmPath(name)}/logs?follow=1&lines=200&format=ndjson&source=${source}`,
      abort.signal,
      (batch) => setLines((current) => [...current, ...batch].slice(-KEEP_LINES)),
      setStatus,
    );
    return () => abort.abort();
  }, [name, source, attempt]);

  // Stay at the bottom unless the reader scrolled up.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs after each new batch of lines
  useEffect(() => {
    const el = box.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [lines]);

  return (
    <section class="logs" aria-label="Logs">
      <h2>Logs</h2>
      <div class="toolbar">
        <label>
          Log source
          <select value={source} onChange={(e) => setSource(e.currentTarget.value as Source)}>
            <option value="notebook">notebook</option>
            <option value="agent">agent</option>
          </select>
        </label>
        <output class="muted">{status}</output>
        <button type="button" onClick={() => setAttempt((n) => n + 1)}>
          Reconnect
        </button>
      </div>
      <pre class="log-lines" ref={box} aria-label={`${source} log`}>
        {lines.map((line, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: lines are append-only; the index is their identity
          <div key={i}>{line}</div>
        ))}
      </pre>
    </section>
  );
}

async function follow(
  url: string,
  signal: AbortSignal,
  onLines: (lines: string[]) => void,
  onStatus: (status: string | ((current: string) => string)) => void,
): Promise<void> {
  try {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { accept: "application/x-ndjson" },
      signal,
    });
    if (!response.ok || !response.body) throw await failureOf(response);
    onStatus("following");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += value;
      const records = rest.split("\n");
      rest = records.pop() ?? "";
      const batch: string[] = [];
      for (const record of records) {
        if (!record) continue;
        const parsed = JSON.parse(record) as { line?: string; end?: { code: string; message: string } };
        if (typeof parsed.line === "string") batch.push(parsed.line);
        if (parsed.end) onStatus(`ended: ${parsed.end.code}: ${parsed.end.message}`);
      }
      if (batch.length) onLines(batch);
    }
    onStatus((current) => (current === "following" ? "ended" : current));
  } catch (error) {
    if (!signal.aborted) onStatus(`stopped: ${errorText(error)}`);
  }
}
