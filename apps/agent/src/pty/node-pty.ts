/**
 * node-pty, loaded on first use: it is a native module built per platform and shipped next to
 * the agent bundle, and only a terminal session needs it. An agent without it runs everything
 * else and answers a terminal request with NBF_PTY_UNAVAILABLE.
 */
import { AgentError } from "../errors.js";

export type NodePty = typeof import("node-pty");

let loaded: Promise<NodePty> | undefined;

/** The module, loaded once; `load` replaces the import (tests), without the cache. */
export function loadNodePty(load?: () => Promise<NodePty>): Promise<NodePty> {
  if (load) return importOrExplain(load);
  loaded ??= importOrExplain(() => import("node-pty")).catch((error: unknown) => {
    loaded = undefined;
    throw error;
  });
  return loaded;
}

async function importOrExplain(load: () => Promise<NodePty>): Promise<NodePty> {
  try {
    const module = await load();
    // node-pty is CommonJS: its functions may sit on `default` when imported from ESM.
    return ((module as { default?: NodePty }).default ?? module) as NodePty;
  } catch (error) {
    const platform = `${process.platform}-${process.arch}`;
    throw new AgentError(
      "NBF_PTY_UNAVAILABLE",
      `terminal sessions need the native node-pty module, which cannot be loaded on ${platform}: ${
        error instanceof Error ? error.message.split("\n")[0] : String(error)
      }; install the agent artifact built for this platform (or node-pty next to the agent)`,
      { platform },
    );
  }
}
