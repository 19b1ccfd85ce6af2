/**
 * The deep `kernel` check: what a user does on first login, done by the agent with its token.
 * Start a kernel through the REST API, run a cell that prints and one that draws a matplotlib
 * figure with the kernel's default backend (inline plots must work out of the box), see the
 * PNG come back, and always delete the kernel again.
 *
 * An abort signal cancels the check at once (its server is going away: a restart). The kernel
 * dies with that server; deleting it is still tried, briefly and in the background.
 */
import type { HealthCheck } from "@nbfleet/shared";
import { apiUrl, requestApi } from "./http.js";
import { KernelChannel } from "./kernel-channel.js";
import { checkResult, describeError } from "./result.js";
import type { CheckTarget } from "./target.js";

export const KERNEL_CHECK_TIMEOUT_MS = 60_000;
const DELETE_TIMEOUT_MS = 10_000;
const DELETE_AFTER_CANCEL_TIMEOUT_MS = 2000;
export const PRINT_MARKER = "nbfleet-ok";
export const PRINT_CELL = `print("${PRINT_MARKER}")`;
export const PLOT_CELL = "import matplotlib.pyplot as plt; plt.plot([1, 2, 3]); plt.show()";
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export async function checkKernel(
  target: CheckTarget,
  now = new Date(),
  timeoutMs = KERNEL_CHECK_TIMEOUT_MS,
  signal?: AbortSignal,
): Promise<HealthCheck> {
  const started = performance.now();
  const deadline = started + timeoutMs;
  const left = () => Math.max(1, Math.round(deadline - performance.now()));
  const since = (t: number) => Math.round(performance.now() - t);
  const seen: string[] = [];
  const data: Record<string, unknown> = { seen };
  let kernelId: string | null = null;
  let channel: KernelChannel | null = null;
  let failure: string | null = null;
  // Pending channel requests fail at once when the channels close.
  const onAbort = () => channel?.close();
  signal?.addEventListener("abort", onAbort, { once: true });

  try {
    signal?.throwIfAborted();
    const created = await requestApi(target, {
      method: "POST",
      path: "api/kernels",
      token: target.token,
      body: {},
      timeoutMs: left(),
      ...(signal ? { signal } : {}),
    });
    const id = (created.body as { id?: unknown } | null)?.id;
    if (created.status !== 201 || typeof id !== "string") {
      throw new Error(`POST /api/kernels answered HTTP ${created.status}${serverMessage(created.body)}`);
    }
    kernelId = id;
    data.kernelId = id;
    seen.push("kernel created");

    channel = await unlessAborted(
      KernelChannel.open(apiUrl(target, `api/kernels/${id}/channels`, "wss"), target.token, left(), target),
      signal,
      (late) => late.close(),
    );
    seen.push("channels open");
    await channel.request("kernel_info_request", {}, left());
    data.kernelStartMs = since(started);
    seen.push("kernel ready");

    const executing = performance.now();
    const printed = await channel.execute(PRINT_CELL, left());
    if (printed.error !== null) throw new Error(`the print cell failed: ${printed.error}`);
    if (!printed.stdout.includes(PRINT_MARKER)) {
      throw new Error(
        `the print cell printed ${JSON.stringify(printed.stdout.slice(0, 200))}, not ${PRINT_MARKER}`,
      );
    }
    seen.push("print cell ran");

    const plotted = await channel.execute(PLOT_CELL, left());
    if (plotted.error !== null) throw new Error(`the plot cell failed: ${plotted.error}`);
    const png = plotted.images[0];
    if (png === undefined) {
      throw new Error("the plot cell sent no image/png: inline plotting is off (is MPLBACKEND set?)");
    }
    if (!png.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
      throw new Error("the plot cell sent image/png data that is not a PNG");
    }
    data.executeMs = since(executing);
    data.pngBytes = png.length;
    data.pngSignature = png.subarray(0, PNG_SIGNATURE.length).toString("hex");
    seen.push("plot drawn");
  } catch (error) {
    failure =
      performance.now() >= deadline
        ? `no result within ${timeoutMs / 1000} s (${describeError(error)})`
        : describeError(error);
  }

  // The catch above takes everything, so this cleanup always runs.
  signal?.removeEventListener("abort", onAbort);
  channel?.close();
  if (signal?.aborted) {
    if (kernelId !== null) void deleteKernel(target, kernelId, DELETE_AFTER_CANCEL_TIMEOUT_MS);
    data.cancelled = true;
    return checkResult(
      "kernel",
      "fail",
      `cancelled: ${describeError(signal.reason)}; seen so far: ${seen.join(", ") || "nothing"}`,
      now,
      data,
    );
  }
  const leftover = kernelId === null ? null : await deleteKernel(target, kernelId);
  if (kernelId !== null) data.kernelDeleted = leftover === null;

  if (failure !== null) {
    const extra = leftover === null ? "" : `; ${leftover}`;
    return checkResult(
      "kernel",
      "fail",
      `${failure}${extra}; seen so far: ${seen.join(", ") || "nothing"}`,
      now,
      data,
    );
  }
  if (leftover !== null) {
    return checkResult("kernel", "warn", `the kernel check passed but ${leftover}`, now, data);
  }
  return checkResult(
    "kernel",
    "pass",
    `kernel started in ${data.kernelStartMs} ms; print and inline plot (${data.pngBytes}-byte PNG) in ${data.executeMs} ms`,
    now,
    data,
  );
}

/** Deletes the kernel; returns null when it is gone, else why it may still run. */
async function deleteKernel(
  target: CheckTarget,
  kernelId: string,
  timeoutMs = DELETE_TIMEOUT_MS,
): Promise<string | null> {
  try {
    const res = await requestApi(target, {
      method: "DELETE",
      path: `api/kernels/${kernelId}`,
      token: target.token,
      timeoutMs,
    });
    if (res.status === 204 || res.status === 404) return null;
    return `deleting kernel ${kernelId} answered HTTP ${res.status}${serverMessage(res.body)}`;
  } catch (error) {
    return `deleting kernel ${kernelId} failed: ${describeError(error)}`;
  }
}

function serverMessage(body: unknown): string {
  const message = (body as { message?: unknown } | null)?.message;
  return typeof message === "string" && message !== "" ? ` (${message})` : "";
}

/** The pending value, unless the signal aborts first; a value that comes too late is discarded. */
function unlessAborted<T>(
  pending: Promise<T>,
  signal: AbortSignal | undefined,
  discard: (late: T) => void,
): Promise<T> {
  if (!signal) return pending;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      pending.then(discard, () => undefined);
      reject(signal.reason);
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
