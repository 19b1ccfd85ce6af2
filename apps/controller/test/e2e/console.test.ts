/**
 * The web console in a real browser (the run's shared Chromium, testkit/browser.ts) against the
 * real `nbfleet server` with three real local machines running Debian's Jupyter: signing in and
 * out, the fleet and machine pages live, single and bulk restarts, the terminal with its replay,
 * the logs panel following, what a viewer may not do, the Origin check, and hostile labels
 * rendered as text. The machines are shared by the tests of the file (each takes a minute to
 * boot here); the tests run in order and the restarts come last but one.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { VmView } from "@nbfleet/shared";
import { newBrowserContext } from "@nbfleet/testkit/browser";
import { ensureConsoleBuilt } from "@nbfleet/testkit/console-build";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { repoRoot } from "@nbfleet/testkit/repo";
import { hostLoadOnly } from "@nbfleet/testkit/vm-serving";
import { waitFor } from "@nbfleet/testkit/wait";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OperationDetail } from "../../src/api/operations/schemas.js";

const TOKEN = "nbf_e2e-console-admin-token-42";
const XSS = "<img src=x onerror=alert(1)>";
const MACHINES = ["demo", "web-2", "web-3"] as const;
const ACTIONS = [
  "Restart notebook",
  "Stop notebook",
  "Start notebook",
  "Rotate password",
  "Rotate certificate",
  "Delete machine",
];
const COLUMNS = ["Name", "Labels", "Machine", "Agent", "Notebook", "Health", "Restarts", "URL", "Last seen"];
// Two cores shared with other runs: every wait in the page is generous.
const UI_MS = 60_000;
const RESTART_MS = 150_000;
const screenshots = path.join(repoRoot, "docs/screenshots");

let controller: ControllerProcess;
let origin: string;

beforeAll(async () => {
  ensureConsoleBuilt();
  controller = await startControllerProcess(makeDataDir("nbf-console-"), await freePort(), TOKEN);
  origin = controller.url;
  for (const name of MACHINES) {
    const labels = { group: "console", ...(name === "web-3" ? { note: XSS } : {}) };
    const created = await api(controller)("POST", "/v1/vms", { name, labels });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  }
  await waitFor(
    "the three machines healthy",
    async () => (await Promise.all(MACHINES.map(vm))).every(healthyButForLoad),
    300_000,
  );
}, 420_000);

afterAll(async () => {
  if (!controller) return;
  for (const name of MACHINES) await api(controller)("DELETE", `/v1/vms/${name}`).catch(() => undefined);
  await stopControllerProcess(controller);
}, 180_000);

describe("the web console in Chromium", () => {
  it("signs in with the admin token, lists demo as healthy, signs out, and the old cookie is dead", async () => {
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      await expect
        .poll(() => page.getByRole("columnheader").allInnerTexts(), { timeout: UI_MS })
        .toEqual(expect.arrayContaining(COLUMNS));
      await expectHealthShown(page, "demo");

      const cookie = await sessionCookie(context);
      expect(cookie.httpOnly).toBe(true);
      expect(cookie.sameSite).toBe("Strict");
      // The token was traded for the cookie: the page keeps it nowhere a script could read.
      const stored = await page.evaluate<string>("JSON.stringify({ ...localStorage, ...sessionStorage })");
      expect(stored).not.toContain(TOKEN);
      expect((await withCookie("GET", "/v1/session", cookie.value)).status).toBe(200);

      await page
        .getByRole("button", { name: "Sign out" })
        .or(page.getByRole("link", { name: "Sign out" }))
        .click();
      await page.waitForURL((url) => url.pathname === "/sign-in", { timeout: UI_MS });
      expect((await context.cookies()).find((c) => c.name === "nbf_session")).toBeUndefined();
      // Replayed by hand, the old cookie opens nothing.
      expect((await withCookie("GET", "/v1/session", cookie.value)).status).toBe(401);
      expect((await withCookie("GET", "/v1/vms", cookie.value)).status).toBe(401);
    });
  });

  it("shows a label holding HTML as text and runs nothing", async () => {
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      const dialogs: string[] = [];
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await expect.poll(() => textOf(row(page, "web-3")), { timeout: UI_MS }).toContain(XSS);
      expect(await textOf(row(page, "web-3"))).toContain("note");
      await page.goto(`${origin}/vms/web-3`);
      await expect.poll(() => bodyText(page), { timeout: UI_MS }).toContain(XSS);
      // An onerror handler would have fired by now: the image would fail at once.
      await page.waitForTimeout(1_000);
      expect(await page.locator("img[src='x']").count()).toBe(0);
      expect(dialogs).toEqual([]);
    });
  });

  it("sorts by a column through the API across pages and filters by a label expression, both kept in the URL", async () => {
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      await page.goto(`${origin}/?limit=2`);
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(["demo", "web-2"]);

      // Name descending is the whole fleet's order: web-3, on the second page by name ascending,
      // now leads the first (a sort of the loaded page alone would show web-2, demo).
      const name = page.getByRole("columnheader", { name: "Name" });
      await name.getByRole("button").click();
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(["web-3", "web-2"]);
      expect(await name.getAttribute("aria-sort")).toBe("descending");
      expect(new URL(page.url()).searchParams.get("order")).toBe("desc");
      await page.getByRole("button", { name: "Next page" }).click();
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(["demo"]);

      // Another column: the pages follow the API's order for it, and a reload keeps it.
      await page.getByRole("columnheader", { name: "Restarts" }).getByRole("button").click();
      await page.waitForURL((url) => url.searchParams.get("sort") === "restarts", { timeout: UI_MS });
      const byApi = await api(controller)<{ items: VmView[] }>("GET", "/v1/vms?sort=restarts&order=asc");
      const want = byApi.body.items.map((v) => v.name);
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(want.slice(0, 2));
      await page.reload();
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(want.slice(0, 2));
      expect(await page.getByRole("columnheader", { name: "Restarts" }).getAttribute("aria-sort")).toBe(
        "ascending",
      );
      await page.getByRole("button", { name: "Next page" }).click();
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(want.slice(2));

      // A label expression in a shared URL, as operation selectors take it.
      await page.goto(`${origin}/?label=${encodeURIComponent("group=console,!note")}`);
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(["demo", "web-2"]);
      await page.goto(`${origin}/?label=note&sort=name&order=desc`);
      await expect.poll(() => fleetNames(page), { timeout: UI_MS }).toEqual(["web-3"]);
      expect(await page.getByLabel("Label filter").inputValue()).toBe("note");

      // A bad one says what is wrong with it, and the URL keeps what was typed.
      await page.getByLabel("Label filter").fill("group=console,,note");
      await page.getByRole("button", { name: "Apply" }).click();
      await expect
        .poll(() => textOf(page.getByRole("alert")), { timeout: UI_MS })
        .toMatch(/NBF_SELECTOR_INVALID: invalid label expression group=console,,note: an empty term/);
      expect(new URL(page.url()).searchParams.get("label")).toBe("group=console,,note");
      expect(await fleetNames(page)).toEqual([]);
    });
  });

  it("shows a viewer no action buttons; the server refuses the viewer's forged POST and a foreign Origin", async () => {
    const created = await api(controller)<{ token: string }>("POST", "/v1/tokens", {
      name: "console-viewer",
      role: "viewer",
    });
    expect(created.status).toBe(201);
    await withContext(async (context) => {
      const page = await signIn(context, created.body.token);
      await expectHealthShown(page, "demo");
      for (const name of ACTIONS) expect(await page.getByRole("button", { name }).count(), name).toBe(0);

      const pid = (await vm("demo")).notebook.pid;
      await page.goto(`${origin}/vms/demo`);
      await expect.poll(() => bodyText(page), { timeout: UI_MS }).toContain(String(pid));
      for (const name of [...ACTIONS, "Terminal"])
        expect(await page.getByRole("button", { name }).count(), name).toBe(0);

      // The page hides the buttons; the server is what refuses. A POST forged from the page
      // itself carries the viewer's cookie and the right Origin: the role refuses it.
      const forged = await page.evaluate<{ status: number; body: string }>(
        `fetch("/v1/vms/demo/notebook/restart", { method: "POST" }).then(async (r) => ({ status: r.status, body: await r.text() }))`,
      );
      expect(forged.status, forged.body).toBe(403);
      expect((await vm("demo")).notebook.pid).toBe(pid);
    });

    // An admin's cookie with a foreign Origin (or none) is refused before the role is looked at.
    const session = await createSession(TOKEN);
    const foreign: Array<Record<string, string>> = [
      { origin: "http://evil.example" },
      { origin: "null" },
      {},
    ];
    for (const headers of foreign) {
      const response = await withCookie("POST", "/v1/vms/demo/notebook/restart", session, headers);
      expect(response.status, JSON.stringify(headers)).toBe(403);
      expect(response.body).toContain("NBF_ORIGIN_REFUSED");
    }
    // Reads are not what the check guards: the same cookie still reads.
    expect((await withCookie("GET", "/v1/vms/demo", session)).status).toBe(200);
  });

  it("writes screenshots of the fleet and machine pages", async () => {
    await mkdir(screenshots, { recursive: true });
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      for (const name of MACHINES) await expectHealthShown(page, name);
      await page.screenshot({ path: path.join(screenshots, "fleet.png"), fullPage: true });
      const pid = (await vm("demo")).notebook.pid;
      await page.goto(`${origin}/vms/demo`);
      await expect.poll(() => bodyText(page), { timeout: UI_MS }).toContain(String(pid));
      await page.screenshot({ path: path.join(screenshots, "machine.png"), fullPage: true });
    });
  });

  it("follows the notebook's log: a line written after the panel opened shows up", async () => {
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      await page.goto(`${origin}/vms/demo`);
      await openPanel(page, "Logs");
      await expect
        .poll(() => bodyText(page), { timeout: UI_MS })
        .toContain("Serving notebooks from local directory");
      // Jupyter logs every 404 with its path: a path nobody else asks for is our line.
      const probe = `nbfleet-console-probe-${Date.now()}`;
      const notebookUrl = (await vm("demo")).notebook.url;
      const other = await context.newPage();
      await other.goto(`${notebookUrl}${probe}`).catch(() => undefined);
      await other.close();
      await expect.poll(() => bodyText(page), { timeout: UI_MS }).toContain(probe);
    });
  });

  it("restarts the notebook from the machine page: restarting, then healthy with a new pid, no reload", async () => {
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      const before = (await vm("demo")).notebook.pid;
      await page.goto(`${origin}/vms/demo`);
      await expect.poll(() => bodyText(page), { timeout: UI_MS }).toContain(String(before));
      await markNoReload(page);
      const seen = watchText(page, /\b(restarting|stopping|starting)\b/i);

      await page.getByRole("button", { name: "Restart notebook" }).click();
      await confirmIfAsked(page, /restart/i);
      const after = await waitFor(
        "demo's notebook restarted and healthy",
        async () => {
          const v = await vm("demo");
          return v.notebook.pid !== before && v.notebook.pid !== null && healthyButForLoad(v) && v;
        },
        RESTART_MS,
      );
      await expect.poll(() => bodyText(page), { timeout: UI_MS }).toContain(String(after.notebook.pid));
      await expect
        .poll(async () => (await bodyText(page)).includes(`\n${(await vm("demo")).health.status}`), {
          timeout: UI_MS,
        })
        .toBe(true);
      expect(await seen()).toBe(true);
      expect(await page.evaluate("window.nbfNoReload")).toBe(1);
    });
  }, 300_000);

  it("bulk-restarts three selected machines one at a time, rolling: 3/3 and every pid changed", async () => {
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      const before = new Map<string, number | null>();
      for (const name of MACHINES) before.set(name, (await vm(name)).notebook.pid);
      for (const name of MACHINES) {
        await row(page, name).waitFor({ timeout: UI_MS });
        await row(page, name).getByRole("checkbox").check();
      }
      await page.getByRole("button", { name: "Restart notebook" }).click();
      const dialog = page.getByRole("dialog");
      await expect.poll(() => textOf(dialog), { timeout: UI_MS }).toMatch(/\b3 machines\b/);
      await dialog.getByLabel(/max concurrency/i).fill("1");
      await dialog.getByLabel(/rolling/i).check();
      await dialog
        .getByRole("button", { name: /restart|confirm|run/i })
        .last()
        .click();

      await page.waitForURL((url) => /^\/operations\/[^/]+$/.test(url.pathname), { timeout: UI_MS });
      const id = new URL(page.url()).pathname.split("/")[2]!;
      const operation = await api(controller)<OperationDetail>("GET", `/v1/operations/${id}`);
      expect(operation.status).toBe(200);
      expect(operation.body).toMatchObject({
        action: "notebook.restart",
        total: 3,
        maxConcurrency: 1,
        rolling: { enabled: true },
      });
      expect(operation.body.targets.items.map((t) => t.vmName).sort()).toEqual([...MACHINES].sort());

      const bar = page.getByRole("progressbar");
      await expect.poll(() => bar.getAttribute("aria-valuemax"), { timeout: UI_MS }).toBe("3");
      await expect
        .poll(() => bar.getAttribute("aria-valuenow"), { timeout: 3 * RESTART_MS, interval: 250 })
        .toBe("3");
      for (const name of MACHINES) {
        const pid = (await vm(name)).notebook.pid;
        expect(pid, name).not.toBeNull();
        expect(pid, name).not.toBe(before.get(name));
      }
    });
  }, 600_000);

  it("runs a terminal: echo $((6*7)) answers 42, and a reopened tab replays it", async () => {
    await withContext(async (context) => {
      const page = await signIn(context, TOKEN);
      await page.goto(`${origin}/vms/demo`);
      await openPanel(page, "Terminal");
      const screen = page.locator(".xterm-rows");
      await screen.waitFor({ timeout: UI_MS });
      // Typed once the shell's prompt shows, as a person would.
      await expect
        .poll(async () => (await screenLines(page)).some((l) => l !== ""), { timeout: UI_MS })
        .toBe(true);
      await page.locator(".xterm").click();
      await page.keyboard.type("echo $((6*7))\n");
      // The echoed command holds 6*7, never 42: a 42 on its own line is the shell's answer.
      await expect.poll(() => screenLines(page), { timeout: UI_MS }).toContain("42");

      // Closing the tab drops the connection; reopening it (the browser restores the tab's
      // sessionStorage, as Chromium's "reopen closed tab" does) reattaches and replays.
      const storage = await page.evaluate<string>("JSON.stringify(Object.entries(sessionStorage))");
      await page.close();
      const reopened = await context.newPage();
      await reopened.addInitScript(
        `if (location.origin === ${JSON.stringify(origin)}) for (const [k, v] of ${storage}) sessionStorage.setItem(k, v);`,
      );
      await reopened.goto(`${origin}/vms/demo`);
      await openPanel(reopened, "Terminal");
      await expect.poll(() => screenLines(reopened), { timeout: UI_MS }).toContain("42");
    });
  });
});

// ---- the browser ------------------------------------------------------------------------------

async function withContext(body: (context: BrowserContext) => Promise<void>): Promise<void> {
  // The notebooks' certificates are self-signed (the logs test visits one).
  const context = await newBrowserContext({
    viewport: { width: 1440, height: 900 },
    ignoreHTTPSErrors: true,
  });
  context.setDefaultTimeout(UI_MS);
  try {
    await body(context);
  } finally {
    await context.close();
  }
}

async function signIn(context: BrowserContext, token: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${origin}/sign-in`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === "/", { timeout: UI_MS });
  await page.locator("table").first().waitFor({ timeout: UI_MS });
  return page;
}

async function sessionCookie(context: BrowserContext) {
  const cookie = (await context.cookies(origin)).find((c) => c.name === "nbf_session");
  if (!cookie) throw new Error("no nbf_session cookie after signing in");
  return cookie;
}

/** The fleet table's row for a machine (its name cell). */
function row(page: Page, name: string): Locator {
  return page
    .getByRole("row")
    .filter({ has: page.getByRole("cell").filter({ hasText: new RegExp(`^\\s*${name}\\s*$`) }) });
}

/** The machines the fleet table shows, top to bottom. */
async function fleetNames(page: Page): Promise<string[]> {
  return page
    .locator("table.fleet tbody tr")
    .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-vm") ?? ""));
}

/** A cell of a machine's row, found by its column header's text. */
async function cellText(page: Page, name: string, column: string): Promise<string> {
  const headers = (await page.getByRole("columnheader").allInnerTexts()).map((h) => h.trim());
  const at = headers.indexOf(column);
  if (at < 0) return `(no column ${column} in ${JSON.stringify(headers)})`;
  const cells = row(page, name).first().getByRole("cell");
  if ((await cells.count()) <= at) return "(no such row)";
  return (await cells.nth(at).innerText()).trim();
}

/**
 * Healthy — or degraded by nothing but the agent's CPU-load warning: this shared 2-core box
 * often runs above the resources check's load threshold, and the page must then say degraded.
 */
function healthyButForLoad(v: VmView): boolean {
  if (v.health.status === "healthy") return true;
  const failing = v.health.checks.filter((c) => c.status !== "pass");
  return v.health.status === "degraded" && failing.length === 1 && hostLoadOnly(failing[0]!);
}

/** The fleet row shows the machine's health as the API has it, and that is healthy (but for load). */
async function expectHealthShown(page: Page, name: string): Promise<void> {
  await expect
    .poll(
      async () => {
        const v = await vm(name);
        if (!healthyButForLoad(v)) return `API: ${v.health.status} ${JSON.stringify(v.health.checks)}`;
        const shown = await cellText(page, name, "Health");
        return new RegExp(`(^|\\s)${v.health.status}$`, "i").test(shown) ? "agrees" : `page: ${shown}`;
      },
      { timeout: UI_MS },
    )
    .toBe("agrees");
}

/** Opens a machine page's panel by its tab, button or link once the page shows it (some are open already). */
async function openPanel(page: Page, name: string): Promise<void> {
  const control = page
    .getByRole("tab", { name })
    .or(page.getByRole("button", { name, exact: true }))
    .or(page.getByRole("link", { name, exact: true }));
  await control.or(page.getByRole("region", { name })).first().waitFor({ timeout: UI_MS });
  if ((await control.count()) > 0) await control.first().click();
}

async function confirmIfAsked(page: Page, name: RegExp): Promise<void> {
  const dialog = page.getByRole("dialog");
  if (await dialog.isVisible().catch(() => false)) await dialog.getByRole("button", { name }).last().click();
}

/**
 * Whether text matching `pattern` appears in the page from now on: only text added or changed
 * after this call counts (the page may already list older events with those words).
 */
function watchText(page: Page, pattern: RegExp): () => Promise<boolean> {
  const armed = page.evaluate(`(() => {
    const re = new RegExp(${JSON.stringify(pattern.source)}, ${JSON.stringify(pattern.flags)});
    window.nbfSeen = false;
    new MutationObserver((records) => {
      for (const record of records) {
        const texts = record.type === "characterData"
          ? [record.target.textContent ?? ""]
          : [...record.addedNodes].map((n) => n.textContent ?? "");
        if (texts.some((t) => re.test(t))) window.nbfSeen = true;
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  })()`);
  return async () => {
    await armed;
    return (await page.evaluate("window.nbfSeen")) === true;
  };
}

async function markNoReload(page: Page): Promise<void> {
  await page.evaluate("window.nbfNoReload = 1");
}

async function bodyText(page: Page): Promise<string> {
  return page
    .locator("body")
    .innerText()
    .catch(() => "");
}

async function textOf(locator: Locator): Promise<string> {
  return locator
    .first()
    .innerText({ timeout: 1_000 })
    .catch(() => "");
}

async function screenLines(page: Page): Promise<string[]> {
  const rows = await page.locator(".xterm-rows > div").allTextContents();
  return rows.map((l) => l.replace(/\u00a0/g, " ").trim());
}

// ---- the API ------------------------------------------------------------------------------------

async function vm(name: string): Promise<VmView> {
  const { status, body } = await api(controller)<VmView>("GET", `/v1/vms/${name}`);
  if (status !== 200) throw new Error(`GET /v1/vms/${name} answered ${status}`);
  return body;
}

async function createSession(token: string): Promise<string> {
  const response = await fetch(`${origin}/v1/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
  });
  expect(response.status).toBe(200);
  const match = /nbf_session=([^;]+)/.exec(response.headers.get("set-cookie") ?? "");
  if (!match) throw new Error("POST /v1/session set no nbf_session cookie");
  return match[1]!;
}

async function withCookie(
  method: string,
  route: string,
  session: string,
  headers: Record<string, string> = { origin },
): Promise<{ status: number; body: string }> {
  const response = await fetch(`${origin}${route}`, {
    method,
    headers: { cookie: `nbf_session=${session}`, ...headers },
  });
  return { status: response.status, body: await response.text() };
}
