/**
 * Issue 13's figures: the web console in Chromium (Debian's, through playwright-core) against a
 * controller (its own process) holding N simulated agents (another process), every
 * `unhealthyEvery`-th reporting a failed notebook, all reporting every `reportIntervalSec`:
 * - fleet page from navigation to a usable table (rows with names and health): p50/p90 over
 *   `loads` loads, each a new tab of the signed-in browser (assets in its cache, as an operator's);
 * - one agent's health change until its row shows it: p99 over `changes` changes (the agent
 *   reports at once; the time runs from the report's request to the row's new text);
 * - the page's JS heap (after a forced GC) over `heapMinutes` minutes of live updates: the fleet's
 *   reports plus `changesPerSec` health changes on random agents; first/last sample and slope;
 * - the console's assets gzipped (-9): what the first page loads (index.html and the scripts and
 *   styles it names) and everything under dist/assets.
 * Everything is on 127.0.0.1; the children and the browser are ended whatever happens.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { buildServer, loadSettings } from "@nbfleet/controller";
import { launchChromium } from "@nbfleet/testkit/chromium";
import { consoleDir, ensureConsoleBuilt } from "@nbfleet/testkit/console-build";
import { ControllerChild } from "@nbfleet/testkit/controller-child-remote";
import { type SeededVm, seedVms } from "@nbfleet/testkit/sim-fleet";
import { SimFleetProcess } from "@nbfleet/testkit/sim-fleet-remote";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { JsonClient } from "./http-client.js";
import { quantile } from "./stats.js";

export interface ConsoleBenchOptions {
  agents: number;
  unhealthyEvery: number;
  reportIntervalSec: number;
  loads: number;
  changes: number;
  heapMinutes: number;
  /** Health changes a second on random agents during the heap window, besides the reports. */
  changesPerSec: number;
}

export interface ConsoleBenchResult {
  agents: number;
  unhealthyVms: number;
  reportIntervalSec: number;
  /** Navigation start to a usable table, per load (ms). */
  loadMs: { p50: number; p90: number; max: number; count: number; rowsShown: number };
  /** A report's request to the row's new health text (ms). */
  changeMs: { p50: number; p99: number; max: number; count: number };
  heap: {
    minutes: number;
    changesPerSec: number;
    samples: number;
    startMB: number;
    endMB: number;
    maxMB: number;
    /** Least-squares slope over the window's samples. */
    slopeMBPerMin: number;
  };
  assets: { firstPageGzipKB: number; allGzipKB: number; files: number };
  pageErrors: number;
}

const CONNECT_TIMEOUT_MS = 600_000;
const USABLE_TIMEOUT_MS = 60_000;
const CHANGE_TIMEOUT_MS = 15_000;
const HEAP_SAMPLE_MS = 15_000;

export async function runConsoleBench(options: ConsoleBenchOptions): Promise<ConsoleBenchResult> {
  ensureConsoleBuilt();
  const assets = await assetSizes();
  const dataDir = await mkdtemp(path.join(tmpdir(), "nbf-bench-console-"));
  const adminToken = `nbf_${randomBytes(32).toString("base64url")}`;
  let controller: ControllerChild | undefined;
  let fleet: SimFleetProcess | undefined;
  let client: JsonClient | undefined;
  let browser: Browser | undefined;
  try {
    const vms = await seed(dataDir, adminToken, options.agents);
    controller = await ControllerChild.start({
      env: {
        ...process.env,
        NBFLEET_DATA_DIR: dataDir,
        NBFLEET_LISTEN: "127.0.0.1:0",
        NBFLEET_ADMIN_TOKEN: adminToken,
        NBFLEET_REPORT_INTERVAL_SEC: String(options.reportIntervalSec),
        NBFLEET_LOG_LEVEL: "error",
      },
      manySockets: true,
    });
    const url = controller.url;
    client = new JsonClient(url, adminToken);
    const api = client;
    fleet = new SimFleetProcess();
    await connectFleet(api, fleet, url, vms, options.agents);
    const unhealthyVms = await fleet.failNotebooks(options.unhealthyEvery);
    await until(`${unhealthyVms} unhealthy VMs listed`, CONNECT_TIMEOUT_MS, async () => {
      const page = await api.expect<{ items: unknown[] }>(200, "GET", "/v1/vms?health=unhealthy&limit=1000");
      return page.items.length === unhealthyVms;
    });

    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const signedIn = await context.request.post(`${url}/v1/session`, { data: { token: adminToken } });
    if (signedIn.status() !== 200)
      throw new Error(`POST /v1/session answered ${signedIn.status()}: ${await signedIn.text()}`);
    const pageErrors: string[] = [];
    const watch = (page: Page) => page.on("pageerror", (error) => pageErrors.push(error.message));

    const wantRows = Math.min(10, options.agents);
    const loads: number[] = [];
    let rowsShown = 0;
    for (let i = 0; i < options.loads; i++) {
      const page = await context.newPage();
      watch(page);
      await page.goto(`${url}/`, { waitUntil: "commit" });
      const { at, rows } = await usableTable(page, wantRows);
      loads.push(at);
      rowsShown = rows;
      await page.close();
    }

    const page = await context.newPage();
    watch(page);
    await page.goto(`${url}/`, { waitUntil: "commit" });
    await usableTable(page, wantRows);
    const changeMs = await healthChanges(page, fleet, options.changes);
    const heap = await heapWindow(context, page, fleet, vms, options);
    if (pageErrors.length > 0) throw new Error(`the console threw: ${pageErrors.slice(0, 5).join(" | ")}`);
    const held = (await api.expect<{ agentsConnected: number }>(200, "GET", "/healthz")).agentsConnected;
    if (held !== options.agents) throw new Error(`only ${held} of ${options.agents} agents held at the end`);

    return {
      agents: options.agents,
      unhealthyVms,
      reportIntervalSec: options.reportIntervalSec,
      loadMs: {
        p50: quantile(loads, 0.5),
        p90: quantile(loads, 0.9),
        max: Math.max(...loads),
        count: loads.length,
        rowsShown,
      },
      changeMs: {
        p50: quantile(changeMs, 0.5),
        p99: quantile(changeMs, 0.99),
        max: Math.max(...changeMs),
        count: changeMs.length,
      },
      heap,
      assets,
      pageErrors: pageErrors.length,
    };
  } finally {
    await browser?.close().catch(() => undefined);
    client?.close();
    await fleet?.close();
    await controller?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * Waits, checking every frame, until the table is usable; returns when that was after the
 * navigation started. (Evaluated as a string through DevTools: the console's CSP forbids eval,
 * which waitForFunction's string form needs.)
 */
async function usableTable(page: Page, want: number): Promise<{ at: number; rows: number }> {
  return Promise.race([
    page.evaluate<{ at: number; rows: number }>(`new Promise((resolve) => {
      const usable = ${USABLE_TABLE};
      const check = () => {
        const found = usable(${want});
        if (found) resolve(found);
        else requestAnimationFrame(check);
      };
      check();
    })`),
    sleep(USABLE_TIMEOUT_MS).then(() => {
      throw new Error(`the fleet table did not show ${want} usable rows within ${USABLE_TIMEOUT_MS} ms`);
    }),
  ]);
}

/**
 * In the page: the fleet table has at least `want` rows, each with a name and a health text.
 * Returns the time since navigation start. (A string: it runs in the page, not here.)
 */
const USABLE_TABLE = `(want) => {
  const table = document.querySelector("table");
  if (!table) return false;
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.innerText.trim());
  const name = heads.indexOf("Name");
  const health = heads.indexOf("Health");
  if (name < 0 || health < 0) return false;
  const rows = [...table.querySelectorAll("tbody tr")].filter(
    (tr) => tr.cells[name]?.innerText.trim() && /healthy|degraded|unknown/i.test(tr.cells[health]?.innerText ?? ""),
  );
  return rows.length >= want && { at: performance.now(), rows: rows.length };
}`;

/**
 * The first row's agent goes unhealthy and healthy in turn; each time, from the report's
 * request until the row says so. The waiter is armed in the page before the change is sent.
 */
async function healthChanges(page: Page, fleet: SimFleetProcess, changes: number): Promise<number[]> {
  const name = await page.evaluate<string>(`(() => {
    const table = document.querySelector("table");
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.innerText.trim());
    const at = heads.indexOf("Name");
    return [...table.querySelectorAll("tbody tr")].map((tr) => tr.cells[at]?.innerText.trim()).find(Boolean);
  })()`);
  await page.evaluate(`window.nbfArm = (name, want) => {
    window.nbfDone = new Promise((resolve) => {
      const check = () => {
        const table = document.querySelector("table");
        const heads = table ? [...table.querySelectorAll("thead th")].map((th) => th.innerText.trim()) : [];
        const n = heads.indexOf("Name");
        const h = heads.indexOf("Health");
        for (const tr of table ? table.querySelectorAll("tbody tr") : []) {
          if (tr.cells[n]?.innerText.trim() !== name) continue;
          const text = (tr.cells[h]?.innerText ?? "").trim().toLowerCase();
          if (new RegExp("(^|\\\\s)" + want + "$").test(text)) return resolve(Date.now());
        }
        requestAnimationFrame(check);
      };
      check();
    });
  }`);
  const change = async (state: "failed" | "running", want: string): Promise<number> => {
    await page.evaluate(`window.nbfArm(${JSON.stringify(name)}, ${JSON.stringify(want)})`);
    const started = Date.now();
    await fleet.setNotebook(name, state);
    const shown = await Promise.race([
      page.evaluate<number>("window.nbfDone"),
      sleep(CHANGE_TIMEOUT_MS).then(() => {
        throw new Error(`${name}'s row did not show ${want} within ${CHANGE_TIMEOUT_MS} ms`);
      }),
    ]);
    return shown - started;
  };
  await change("running", "healthy"); // from whatever it was: not measured
  const out: number[] = [];
  for (let i = 0; i < changes; i++)
    out.push(await change(i % 2 === 0 ? "failed" : "running", i % 2 === 0 ? "unhealthy" : "healthy"));
  return out;
}

async function heapWindow(
  context: BrowserContext,
  page: Page,
  fleet: SimFleetProcess,
  vms: SeededVm[],
  options: ConsoleBenchOptions,
): Promise<ConsoleBenchResult["heap"]> {
  const cdp = await context.newCDPSession(page);
  const sample = async () => {
    await cdp.send("HeapProfiler.collectGarbage");
    const { usedSize } = await cdp.send("Runtime.getHeapUsage");
    return usedSize / 2 ** 20;
  };
  const samples: Array<{ min: number; mb: number }> = [];
  const started = performance.now();
  const durationMs = options.heapMinutes * 60_000;
  samples.push({ min: 0, mb: await sample() });
  // Random agents fail and recover (one back each tick), so the unhealthy count stays put.
  let failed: string | undefined;
  const tickMs = options.changesPerSec > 0 ? 1000 / options.changesPerSec : 0;
  let nextSample = HEAP_SAMPLE_MS;
  while (performance.now() - started < durationMs) {
    if (tickMs > 0) {
      if (failed) await fleet.setNotebook(failed, "running");
      failed = vms[Math.floor(Math.random() * vms.length)]!.name;
      await fleet.setNotebook(failed, "failed");
    }
    const elapsed = performance.now() - started;
    if (elapsed >= nextSample) {
      samples.push({ min: elapsed / 60_000, mb: await sample() });
      nextSample += HEAP_SAMPLE_MS;
    }
    await sleep(tickMs > 0 ? tickMs : Math.min(1000, durationMs));
  }
  if (failed) await fleet.setNotebook(failed, "running");
  samples.push({ min: (performance.now() - started) / 60_000, mb: await sample() });
  await cdp.detach();
  return {
    minutes: options.heapMinutes,
    changesPerSec: options.changesPerSec,
    samples: samples.length,
    startMB: samples[0]!.mb,
    endMB: samples.at(-1)!.mb,
    maxMB: Math.max(...samples.map((s) => s.mb)),
    slopeMBPerMin: slope(samples.map((s) => [s.min, s.mb])),
  };
}

function slope(points: Array<[number, number]>): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

/** index.html and the assets it names (the first page), and every asset, each gzipped -9. */
async function assetSizes(): Promise<ConsoleBenchResult["assets"]> {
  const dist = path.join(consoleDir, "dist");
  const html = await readFile(path.join(dist, "index.html"));
  const gz = (data: Buffer) => gzipSync(data, { level: 9 }).length;
  const named = new Set(
    [...html.toString("utf8").matchAll(/(?:src|href)="\/?(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!),
  );
  if (named.size === 0) throw new Error(`${dist}/index.html names no script or style under assets/`);
  let firstPage = gz(html);
  for (const file of named) firstPage += gz(await readFile(path.join(dist, file)));
  const all = (await readdir(path.join(dist, "assets"))).filter((f) => /\.(js|css)$/.test(f));
  let allBytes = gz(html);
  for (const file of all) allBytes += gz(await readFile(path.join(dist, "assets", file)));
  return { firstPageGzipKB: firstPage / 1024, allGzipKB: allBytes / 1024, files: all.length };
}

async function connectFleet(
  api: JsonClient,
  fleet: SimFleetProcess,
  url: string,
  vms: SeededVm[],
  agents: number,
): Promise<void> {
  const connecting = fleet.start({ url, vms, concurrency: 200, record: false, reconnect: false });
  connecting.catch(() => {}); // awaited below
  await until(`${agents} agents connected`, CONNECT_TIMEOUT_MS, async () => {
    const { agentsConnected } = await api.expect<{ agentsConnected: number }>(200, "GET", "/healthz");
    return agentsConnected >= agents;
  });
  await connecting;
}

async function until(what: string, timeoutMs: number, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`console bench: timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** N VMs with agent credentials straight into the store, then closed (as the controller bench). */
async function seed(dataDir: string, adminToken: string, count: number): Promise<SeededVm[]> {
  const settings = loadSettings({
    env: {},
    flags: { dataDir, listen: "127.0.0.1:0", adminToken, logLevel: "silent" },
  });
  const app = await buildServer(settings, { provider: new SimProvider() });
  try {
    return await seedVms(app, { count, labels: (i) => ({ ring: String(i % 4) }) });
  } finally {
    await app.close();
  }
}
