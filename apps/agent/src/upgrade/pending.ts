/** Reads `upgrade.json` and `rollback.json`; a missing file is null, an unreadable one too (and said). */
import { readFile } from "node:fs/promises";
import type { InstallLayout, PendingUpgrade, RollbackRecord } from "./install-layout.js";

export async function readPendingUpgrade(layout: InstallLayout): Promise<PendingUpgrade | null> {
  const value = await readJson(layout.upgradeFile);
  if (!value || typeof value.to !== "string" || typeof value.from !== "string") return null;
  return value as unknown as PendingUpgrade;
}

export async function readRollback(layout: InstallLayout): Promise<RollbackRecord | null> {
  const value = await readJson(layout.rollbackFile);
  if (!value) return null;
  const text = (key: string) => (typeof value[key] === "string" ? (value[key] as string) : "unknown");
  return { from: text("from"), to: text("to"), reason: text("reason"), at: text("at") };
}

async function readJson(file: string): Promise<Record<string, unknown> | null> {
  let raw: string;
  try {
    raw = await readFile(file, "utf8");
  } catch {
    return null;
  }
  try {
    const value = JSON.parse(raw) as unknown;
    return value && typeof value === "object" ? (value as Record<string, unknown>) : {};
  } catch {
    // A launcher that wrote half a file still means "something happened": keep what is known.
    return {};
  }
}
