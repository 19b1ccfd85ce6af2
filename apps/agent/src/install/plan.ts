/**
 * What installing Jupyter means on each platform, as data: a list of exact commands. The same
 * plan is printed by `--dry-run`, quoted in "run this as root" errors and executed by run.ts.
 */
import path from "node:path";
import { powershellQuote, powershellWord, shellWord } from "@nbfleet/shared/quote";
import type { InstallPlatform } from "./os-release.js";

export interface InstallStep {
  description: string;
  argv: string[];
  /** Set for commands that must run with this environment (shown in the printed plan too). */
  env?: Record<string, string>;
  needsRoot: boolean;
}

export interface InstallPlan {
  platform: InstallPlatform;
  steps: InstallStep[];
}

export const APT_PACKAGES = ["jupyter-notebook", "python3-matplotlib", "python3-numpy", "python3-ipykernel"];
export const ZYPPER_PACKAGES = [
  "python3-notebook",
  "python3-matplotlib",
  "python3-numpy",
  "python3-ipykernel",
];
export const PIP_PACKAGES = ["notebook", "matplotlib", "numpy", "ipykernel"];

const INSTALL_WHAT = "install the Jupyter notebook server, matplotlib, NumPy and ipykernel";

export function planInstall(platform: InstallPlatform, options: { venvDir: string }): InstallPlan {
  switch (platform) {
    case "debian":
      return {
        platform,
        steps: [
          { description: "refresh the package lists", argv: ["apt-get", "update"], needsRoot: true },
          {
            description: INSTALL_WHAT,
            argv: ["apt-get", "install", "-y", "--no-install-recommends", ...APT_PACKAGES],
            env: { DEBIAN_FRONTEND: "noninteractive" },
            needsRoot: true,
          },
        ],
      };
    case "opensuse":
      return {
        platform,
        steps: [
          {
            description: INSTALL_WHAT,
            argv: ["zypper", "--non-interactive", "install", ...ZYPPER_PACKAGES],
            needsRoot: true,
          },
        ],
      };
    case "pip":
      return {
        platform,
        steps: venvSteps(
          options.venvDir,
          ["python3", "-m", "venv"],
          path.posix.join(options.venvDir, "bin", "pip"),
        ),
      };
    case "windows":
      return {
        platform,
        steps: venvSteps(
          options.venvDir,
          ["py", "-3", "-m", "venv"],
          path.win32.join(options.venvDir, "Scripts", "pip.exe"),
        ),
      };
  }
}

/** Without system packages: a virtual environment in venvDir, then pip installs into it (no root needed). */
function venvSteps(venvDir: string, createVenv: string[], pip: string): InstallStep[] {
  return [
    {
      description: `create a Python virtual environment in ${venvDir}`,
      argv: [...createVenv, venvDir],
      needsRoot: false,
    },
    { description: `${INSTALL_WHAT} into it`, argv: [pip, "install", ...PIP_PACKAGES], needsRoot: false },
  ];
}

/**
 * The exact command line of a step as a person would type it: for POSIX sh with environment
 * assignments first, for Windows plans in PowerShell (where the agent's bootstrap runs).
 */
export function formatCommand(step: InstallStep, platform: InstallPlatform = "debian"): string {
  const env = Object.entries(step.env ?? {});
  if (platform !== "windows") {
    return [...env.map(([key, value]) => `${key}=${shellWord(value)}`), ...step.argv.map(shellWord)].join(
      " ",
    );
  }
  const [program = "", ...args] = step.argv.map(powershellWord);
  // PowerShell takes a quoted first word for a string to print; `&` runs it as the program.
  const call = program.startsWith("'") ? `& ${program}` : program;
  return [...env.map(([key, value]) => `$env:${key} = ${powershellQuote(value)};`), call, ...args].join(" ");
}

export function planNeedsRoot(plan: InstallPlan): boolean {
  return plan.steps.some((step) => step.needsRoot);
}

/** The text `--dry-run` prints: each step's purpose and its exact command line. */
export function formatPlan(plan: InstallPlan): string {
  const root = planNeedsRoot(plan) ? " (as root)" : "";
  const lines = [`Install plan for ${plan.platform}${root}:`];
  plan.steps.forEach((step, index) => {
    lines.push(`  ${index + 1}. ${step.description}`);
    lines.push(`     ${formatCommand(step, plan.platform)}`);
  });
  return `${lines.join("\n")}\n`;
}
