/**
 * The quickstart as a person lives it: the real `nbfleet up --json` (what `pnpm start` runs)
 * brings up the controller and the `demo` machine, then a real Chromium (Debian's, driven by
 * playwright-core) logs in to the demo notebook with the printed password, creates a Python 3
 * notebook and runs a cell that draws a matplotlib plot inline. At the end the machine is
 * deleted and the controller stopped, and no process of the run may be left behind.
 */
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { sharedBrowser } from "@nbfleet/testkit/browser";
import { freePort } from "@nbfleet/testkit/ports";
import { spawnTs } from "@nbfleet/testkit/processes";
import { controllerMain } from "@nbfleet/testkit/repo";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Two cores shared with other test runs: every wait is generous.
const UI_TIMEOUT_MS = 60_000;
const PLOT_TIMEOUT_MS = 180_000;
const PLOT_CELL =
  'import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16])\nplt.title("nbfleet")\nplt.show()';

interface VmJson {
  name: string;
  state: string;
  notebook: {
    state: string | null;
    url: string | null;
    pid: number | null;
    port: number | null;
    certificate: { fingerprintSha256: string } | null;
  };
  health: { status: string };
}

interface UpSummary {
  apiUrl: string;
  adminToken: string | null;
  adminTokenFile: string;
  demo: { url: string; password: string | null; vm: VmJson } | null;
}

/** A process we must see gone; the start time guards against a recycled pid. */
interface TrackedProcess {
  what: string;
  pid: number;
  startTime: string;
}

let workDir: string;
let dataDir: string;
let artifactsDir: string;
let controller: ChildProcess | undefined;
let controllerStderr = "";
let summary: UpSummary;
let browser: Browser | undefined;
let demoDeleted = false;
const tracked = new Map<number, TrackedProcess>();

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "nbf-browser-"));
  dataDir = path.join(workDir, "data");
  // Others may enter the data dir, so the sandboxes stay inside it (see sandbox-root.ts) and
  // removing the work dir removes everything the run wrote.
  await chmod(workDir, 0o755);
  await mkdir(dataDir, { mode: 0o755 });
  await chmod(dataDir, 0o755);
  artifactsDir = process.env.NBFLEET_E2E_ARTIFACTS ?? path.join(workDir, "artifacts");
  await mkdir(artifactsDir, { recursive: true });
  summary = await nbfleetUp(dataDir, `127.0.0.1:${await freePort()}`);
  await track();
  browser = await sharedBrowser();
}, 360_000);

afterAll(async () => {
  await track().catch(() => undefined);
  if (controller && running(controller)) {
    if (!demoDeleted) await deleteDemo().catch(() => undefined);
    await stopController(controller);
  }
  // Whatever the orderly path missed goes now, so a failed run leaves nothing behind either.
  for (const p of tracked.values()) if (await sameProcess(p)) signal(p.pid, "SIGKILL");
  await rm(workDir, { recursive: true, force: true });
}, 180_000);

describe("pnpm start, then the demo notebook in a real browser", () => {
  it("prints the API URL, the admin token and the demo notebook with its one-time password", async () => {
    expect(summary.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(summary.adminToken).toMatch(/^nbf_/);
    expect(summary.demo?.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    expect(summary.demo?.password?.length).toBeGreaterThanOrEqual(12);
    const vm = await api<VmJson>("GET", "/v1/vms/demo");
    expect(vm.notebook.state).toBe("running");
    expect(vm.notebook.url).toBe(summary.demo?.url);
    expect(vm.notebook.certificate?.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    // The data directory was made 0755 before `up`: the log itself must keep others out.
    expect((await stat(path.join(dataDir, "controller.log"))).mode & 0o777).toBe(0o600);
  });

  it("serves the browser the certificate the API reports", async () => {
    const context = await newContext();
    try {
      const page = await context.newPage();
      // Chromium hands out the certificate chain of an origin only when the Network domain
      // watched the load.
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      await page.goto(demoUrl(), { timeout: UI_TIMEOUT_MS });
      const { tableNames } = await cdp.send("Network.getCertificate", { origin: new URL(demoUrl()).origin });
      expect(tableNames.length).toBeGreaterThan(0);
      const leaf = Buffer.from(tableNames[0]!, "base64");
      const vm = await api<VmJson>("GET", "/v1/vms/demo");
      expect(fingerprint(leaf)).toBe(vm.notebook.certificate?.fingerprintSha256);
    } finally {
      await context.close();
    }
  });

  it("keeps a wrong password on the login page with an error", async () => {
    const context = await newContext();
    try {
      const page = await context.newPage();
      await openLoginPage(page);
      await page.fill("#password_input", `${summary.demo?.password}-wrong`);
      await page.click("#login_submit");
      await page.waitForLoadState("load");
      await expect.poll(() => page.locator(".message.error").textContent()).toMatch(/Invalid credentials/);
      expect(new URL(page.url()).pathname).toBe("/login");
      expect(await page.locator("#password_input").count()).toBe(1);
      expect(await page.locator("#notebook_list").count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it(
    "logs in with the printed password, creates a Python 3 notebook and shows a matplotlib plot",
    async () => {
      const context = await newContext();
      try {
        const tree = await context.newPage();
        await openLoginPage(tree);
        await tree.fill("#password_input", summary.demo?.password ?? "");
        await tree.click("#login_submit");
        await tree.waitForURL((url) => url.pathname === "/tree", { timeout: UI_TIMEOUT_MS });
        await tree.locator("#notebook_list").waitFor({ timeout: UI_TIMEOUT_MS });

        await tree.click("#new-dropdown-button");
        const newItem = tree.locator("#new-menu a", { hasText: "Python 3 (ipykernel)" });
        await newItem.waitFor({ timeout: UI_TIMEOUT_MS });
        // The menu opens the notebook in a new tab.
        const [notebook] = await Promise.all([
          context.waitForEvent("page", { timeout: UI_TIMEOUT_MS }),
          newItem.click(),
        ]);
        await notebook.waitForURL(/\/notebooks\/Untitled\d*\.ipynb/, { timeout: UI_TIMEOUT_MS });
        await notebook.locator("#kernel_indicator_icon.kernel_idle_icon").waitFor({
          state: "attached",
          timeout: PLOT_TIMEOUT_MS,
        });

        await notebook.locator(".cell.code_cell .CodeMirror").first().click();
        await notebook.keyboard.type(PLOT_CELL);
        // CodeMirror closes brackets and quotes as one types: the cell must hold exactly the code.
        expect(await notebook.evaluate("Jupyter.notebook.get_cell(0).get_text()")).toBe(PLOT_CELL);
        await notebook.keyboard.press("Shift+Enter");

        const plot = notebook.locator('.output_area img[src^="data:image/png;base64,"]').first();
        await plot.waitFor({ state: "visible", timeout: PLOT_TIMEOUT_MS });
        const width = await plot.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth);
        expect(width).toBeGreaterThan(100);
        expect(await notebook.locator(".output_area .output_error").count()).toBe(0);
        await notebook.screenshot({ path: path.join(artifactsDir, "demo-plot.png"), fullPage: true });
        await track();
        expect([...tracked.values()].some((p) => p.what === "kernel")).toBe(true);
      } finally {
        await context.close();
      }
    },
    PLOT_TIMEOUT_MS * 2,
  );

  it("deleting the demo machine and stopping the controller leaves no process behind", async () => {
    await track();
    expect([...tracked.values()].map((p) => p.what)).toEqual(
      expect.arrayContaining(["controller", "agent launcher", "agent", "notebook"]),
    );
    await deleteDemo();
    expect(await stopController(controller!)).toBe(0);
    for (const p of tracked.values()) {
      await waitUntil(`${p.what} (pid ${p.pid}) to exit`, async () => !(await sameProcess(p)), 60_000);
    }
    expect(await stat(path.join(dataDir, "sandboxes", "demo")).catch(() => null)).toBeNull();
  }, 240_000);
});

// ---- the controller, run the way `pnpm start` runs it -------------------------------------

/** `nbfleet --json up`, resolved with the summary it prints once the demo notebook serves. */
function nbfleetUp(dir: string, listen: string): Promise<UpSummary> {
  const child = spawnTs(controllerMain, ["--json", "up"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NBFLEET_DATA_DIR: dir, NBFLEET_LISTEN: listen, NO_COLOR: "1" },
  });
  controller = child;
  let stdout = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    controllerStderr += chunk.toString();
  });
  return new Promise<UpSummary>((resolve, reject) => {
    // The summary is one pretty-printed JSON object: it is complete once it parses.
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      try {
        resolve(JSON.parse(stdout) as UpSummary);
      } catch {
        // not complete yet
      }
    });
    child.once("exit", (code, sig) =>
      reject(
        new Error(`nbfleet up exited (${code ?? sig}) before its summary: ${controllerStderr}${stdout}`),
      ),
    );
  });
}

async function api<T>(method: string, route: string): Promise<T> {
  const response = await fetch(`${summary.apiUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${summary.adminToken}` },
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function deleteDemo(): Promise<void> {
  await api("DELETE", "/v1/vms/demo");
  demoDeleted = true;
}

/** SIGINT (what Ctrl-C sends), SIGKILL after a grace; resolves with the exit code. */
async function stopController(child: ChildProcess): Promise<number | null> {
  if (!running(child)) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

// ---- the browser ----------------------------------------------------------------------------

function demoUrl(): string {
  if (!summary.demo) throw new Error(`nbfleet up printed no demo machine: ${JSON.stringify(summary)}`);
  return summary.demo.url;
}

/** A fresh context: no cookies from an earlier test; the certificate is self-signed. */
function newContext(): Promise<BrowserContext> {
  if (!browser) throw new Error("chromium is not running");
  return browser.newContext({ ignoreHTTPSErrors: true });
}

async function openLoginPage(page: Page): Promise<void> {
  await page.goto(demoUrl(), { timeout: UI_TIMEOUT_MS });
  await page.waitForURL((url) => url.pathname === "/login", { timeout: UI_TIMEOUT_MS });
  await page.locator("#password_input").waitFor({ timeout: UI_TIMEOUT_MS });
}

function fingerprint(der: Buffer): string {
  return createHash("sha256").update(der).digest("hex").toUpperCase().match(/../g)!.join(":");
}

// ---- processes --------------------------------------------------------------------------------

/** Records every process of this run that exists now: controller, agent, notebook, kernels. */
async function track(): Promise<void> {
  const add = async (what: string, pid: number | null | undefined) => {
    if (!pid || tracked.has(pid)) return;
    const startTime = await startTimeOf(pid);
    if (startTime) tracked.set(pid, { what, pid, startTime });
  };
  await add("controller", controller?.pid);
  const launcher = Number.parseInt(
    await readFile(path.join(dataDir, "sandboxes", "demo", "install", "agent.pid"), "utf8").catch(() => ""),
    10,
  );
  if (Number.isInteger(launcher)) {
    await add("agent launcher", launcher);
    for (const pid of await childrenOf(launcher)) await add("agent", pid);
  }
  const notebook = demoDeleted ? null : await api<VmJson>("GET", "/v1/vms/demo").catch(() => null);
  const notebookPid = notebook?.notebook.pid;
  if (notebookPid) {
    await add("notebook", notebookPid);
    for (const pid of await childrenOf(notebookPid)) await add("kernel", pid);
  }
}

async function stats(): Promise<Array<{ pid: number; ppid: number; startTime: string }>> {
  const rows = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const parsed = parseStat(await readFile(`/proc/${name}/stat`, "utf8").catch(() => ""));
    if (parsed && parsed.state !== "Z") rows.push({ pid: Number(name), ...parsed });
  }
  return rows;
}

/** /proc/<pid>/stat: the fields after the parenthesised command name. */
function parseStat(text: string): { state: string; ppid: number; startTime: string } | null {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  if (fields.length < 20) return null;
  return { state: fields[0]!, ppid: Number(fields[1]), startTime: fields[19]! };
}

async function childrenOf(pid: number): Promise<number[]> {
  return (await stats()).filter((p) => p.ppid === pid).map((p) => p.pid);
}

async function startTimeOf(pid: number): Promise<string | null> {
  const parsed = parseStat(await readFile(`/proc/${pid}/stat`, "utf8").catch(() => ""));
  return parsed && parsed.state !== "Z" ? parsed.startTime : null;
}

async function sameProcess(p: TrackedProcess): Promise<boolean> {
  return (await startTimeOf(p.pid)) === p.startTime;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function waitUntil(what: string, done: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}
