/**
 * The machine's shell in xterm.js over `/v1/vms/{name}/shell` (WebSocket; the session cookie
 * and the page's Origin authenticate it). Frames as the CLI's terminal client: binary
 * `<channel byte><bytes>` both ways, JSON text frames for control. The session id is kept in
 * sessionStorage per VM, so a dropped connection or a reopened tab reattaches and shows the
 * replayed output.
 */
import "@xterm/xterm/css/xterm.css";
import type { TerminalChannel, TerminalCloseCode, TerminalServerFrame } from "@nbfleet/shared";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "preact/hooks";
import { mirrorInlineStyles } from "./csp-styles.js";
import { forgetTerminalSession, rememberTerminalSession, terminalSession } from "./session-store.js";

const STDIN: (typeof TerminalChannel)["stdin"] = 0;
/** Close codes after which the session is over: attaching again would open a new shell. */
const FINAL_CLOSES: number[] = [
  1000 satisfies (typeof TerminalCloseCode)["exited"],
  1001 satisfies (typeof TerminalCloseCode)["goingAway"],
  4010 satisfies (typeof TerminalCloseCode)["agentGone"],
  4011 satisfies (typeof TerminalCloseCode)["idle"],
  4013 satisfies (typeof TerminalCloseCode)["openFailed"],
  4014 satisfies (typeof TerminalCloseCode)["ended"],
];
const TAKEN_OVER: (typeof TerminalCloseCode)["takenOver"] = 4012;
const RECONNECT_MS = 1000;

export function TerminalPanel({ name }: { name: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState("connecting…");
  const [generation, setGeneration] = useState(0);
  const socketRef = useRef<WebSocket | null>(null);

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new generation is a new terminal (the Reconnect button)
  useEffect(() => {
    const element = host.current!;
    const term = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    // xterm pauses rendering while off screen: bring it into view (it opens on request, or to reattach).
    element.scrollIntoView({ block: "nearest" });
    const unmirror = mirrorInlineStyles(element);
    fit.fit();
    const encoder = new TextEncoder();
    let socket: WebSocket | null = null;
    let disposed = false;
    let wrote = false;
    let retry: ReturnType<typeof setTimeout> | null = null;

    const send = (data: string | Uint8Array) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(data);
    };
    const connect = () => {
      const query = new URLSearchParams({ cols: String(term.cols), rows: String(term.rows) });
      const session = terminalSession(name);
      if (session) query.set("session", session);
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(
        `${scheme}://${location.host}/v1/vms/${encodeURIComponent(name)}/shell?${query}`,
      );
      socketRef.current = socket;
      socket.binaryType = "arraybuffer";
      let opened = false;
      socket.onmessage = (message) => {
        if (message.data instanceof ArrayBuffer) {
          wrote = true;
          term.write(new Uint8Array(message.data, 1));
          return;
        }
        let frame: TerminalServerFrame;
        try {
          frame = JSON.parse(message.data as string) as TerminalServerFrame;
        } catch {
          return;
        }
        if (frame.type === "session") {
          opened = true;
          rememberTerminalSession(name, frame.session);
          // The replay that follows is the screen so far: a terminal that already shows output
          // (a reconnect in this page) starts from a clean screen.
          if (frame.reattached && wrote) {
            term.reset();
            wrote = false;
          }
          setStatus(
            frame.reattached
              ? `reattached to session ${frame.session} (${frame.replayedBytes} bytes replayed)`
              : `session ${frame.session}`,
          );
        } else if (frame.type === "exit") {
          forgetTerminalSession(name);
          setStatus(`the shell exited (${frame.exitCode ?? frame.signal ?? "?"})`);
        } else if (frame.type === "error") {
          setStatus(`${frame.code}: ${frame.message}`);
        }
      };
      socket.onclose = (event) => {
        if (disposed) return;
        if (FINAL_CLOSES.includes(event.code) && opened) {
          forgetTerminalSession(name);
          setStatus((s) => (s.startsWith("session") ? `closed (${event.code} ${event.reason})` : s));
          return;
        }
        if (event.code === TAKEN_OVER) {
          setStatus("attached in another window; Reconnect takes it back");
          return;
        }
        if (!opened && session) {
          // The stored session is gone (ended while away): open a new one.
          forgetTerminalSession(name);
        }
        if (!opened && !session) {
          // A refused upgrade gives the page no answer to read; these are the usual reasons.
          setStatus(
            "could not open the terminal: the controller refused it (the machine's agent offline, too many open sessions on this machine, or the session expired); End session in another tab, or try again",
          );
          return;
        }
        setStatus("connection lost; reattaching…");
        retry = setTimeout(connect, RECONNECT_MS);
      };
    };

    term.onData((data) => {
      const bytes = encoder.encode(data);
      const frame = new Uint8Array(bytes.length + 1);
      frame[0] = STDIN;
      frame.set(bytes, 1);
      send(frame);
    });
    term.onResize(({ cols, rows }) => send(JSON.stringify({ type: "resize", cols, rows })));
    const resized = new ResizeObserver(() => fit.fit());
    resized.observe(element);
    connect();
    term.focus();

    return () => {
      disposed = true;
      if (retry) clearTimeout(retry);
      resized.disconnect();
      // Leaving the page detaches; the session goes on and the next visit reattaches.
      socket?.close(1000, "detached");
      unmirror();
      term.dispose();
    };
  }, [name, generation]);

  return (
    <section class="terminal" aria-label="Terminal">
      <h2>Terminal</h2>
      <div class="toolbar">
        <output class="muted">{status}</output>
        <button type="button" onClick={() => setGeneration((n) => n + 1)}>
          Reconnect
        </button>
        <button
          type="button"
          onClick={() => {
            const socket = socketRef.current;
            if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "close" }));
          }}
        >
          End session
        </button>
      </div>
      <div class="xterm-host" ref={host} />
    </section>
  );
}
