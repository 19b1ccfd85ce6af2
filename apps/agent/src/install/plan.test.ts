import { describe, expect, it } from "vitest";
import { formatCommand, formatPlan, planInstall, planNeedsRoot } from "./plan.js";

describe("planInstall", () => {
  it("debian: apt-get update, then a non-interactive install without recommends", () => {
    const plan = planInstall("debian", { venvDir: "/unused" });
    expect(plan.steps.map((step) => step.argv)).toEqual([
      ["apt-get", "update"],
      [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "jupyter-notebook",
        "python3-matplotlib",
        "python3-numpy",
        "python3-ipykernel",
      ],
    ]);
    expect(plan.steps[1]!.env).toEqual({ DEBIAN_FRONTEND: "noninteractive" });
    expect(planNeedsRoot(plan)).toBe(true);
  });

  it("opensuse: one zypper install", () => {
    const plan = planInstall("opensuse", { venvDir: "/unused" });
    expect(plan.steps.map((step) => step.argv)).toEqual([
      [
        "zypper",
        "--non-interactive",
        "install",
        "python3-notebook",
        "python3-matplotlib",
        "python3-numpy",
        "python3-ipykernel",
      ],
    ]);
    expect(planNeedsRoot(plan)).toBe(true);
  });

  it("pip: a venv, then pip from inside it, no root", () => {
    const plan = planInstall("pip", { venvDir: "/srv/nb/venv" });
    expect(plan.steps.map((step) => step.argv)).toEqual([
      ["python3", "-m", "venv", "/srv/nb/venv"],
      ["/srv/nb/venv/bin/pip", "install", "notebook", "matplotlib", "numpy", "ipykernel"],
    ]);
    expect(planNeedsRoot(plan)).toBe(false);
  });

  it("windows: the py launcher makes the venv, Scripts\\pip.exe installs", () => {
    const plan = planInstall("windows", { venvDir: "C:\\nbfleet\\venv" });
    expect(plan.steps.map((step) => step.argv)).toEqual([
      ["py", "-3", "-m", "venv", "C:\\nbfleet\\venv"],
      ["C:\\nbfleet\\venv\\Scripts\\pip.exe", "install", "notebook", "matplotlib", "numpy", "ipykernel"],
    ]);
    expect(planNeedsRoot(plan)).toBe(false);
  });
});

describe("formatPlan", () => {
  it("prints every exact command line of the apt plan", () => {
    expect(formatPlan(planInstall("debian", { venvDir: "/unused" }))).toBe(
      [
        "Install plan for debian (as root):",
        "  1. refresh the package lists",
        "     apt-get update",
        "  2. install the Jupyter notebook server, matplotlib, NumPy and ipykernel",
        "     DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jupyter-notebook python3-matplotlib python3-numpy python3-ipykernel",
        "",
      ].join("\n"),
    );
  });

  it("shell-quotes a venv path with spaces and quotes", () => {
    const text = formatPlan(planInstall("pip", { venvDir: "/tmp/my venv's" }));
    expect(text).toContain("python3 -m venv '/tmp/my venv'\\''s'\n");
    expect(text).toContain("'/tmp/my venv'\\''s/bin/pip' install notebook matplotlib numpy ipykernel\n");
    expect(text.startsWith("Install plan for pip:\n")).toBe(true);
  });

  it("writes Windows plans for PowerShell: verbatim single quotes, `&` before a quoted program", () => {
    const text = formatPlan(planInstall("windows", { venvDir: "C:\\Program Data\\nbfleet\\venv" }));
    expect(text).toContain("py -3 -m venv 'C:\\Program Data\\nbfleet\\venv'\n");
    expect(text).toContain("& 'C:\\Program Data\\nbfleet\\venv\\Scripts\\pip.exe' install notebook");
  });

  it("keeps $ and backticks in a Windows path from expanding (double quotes would expand them)", () => {
    const text = formatPlan(planInstall("windows", { venvDir: "C:\\$env:TEMP\\`$(x)'s" }));
    expect(text).toContain("py -3 -m venv 'C:\\$env:TEMP\\`$(x)''s'\n");
  });
});

describe("formatCommand", () => {
  it("formats environment assignments before the command", () => {
    expect(
      formatCommand({ description: "", argv: ["echo", "hi there"], env: { A: "1 2" }, needsRoot: false }),
    ).toBe("A='1 2' echo 'hi there'");
    expect(
      formatCommand(
        { description: "", argv: ["echo", "hi there"], env: { A: "$x" }, needsRoot: false },
        "windows",
      ),
    ).toBe("$env:A = '$x'; echo 'hi there'");
  });

  it("round-trips nasty arguments through /bin/sh", async () => {
    const { execFileSync } = await import("node:child_process");
    const args = [
      "plain",
      "",
      "a b",
      "it's",
      '"dq"',
      "$HOME",
      "`id`",
      "back\\slash",
      "new\nline",
      "*?[x]",
      "~",
    ];
    const command = formatCommand({ description: "", argv: ["printf", "%s\\0", ...args], needsRoot: false });
    const out = execFileSync("/bin/sh", ["-c", command], { encoding: "utf8" });
    expect(out.split("\0").slice(0, -1)).toEqual(args);
  });
});
