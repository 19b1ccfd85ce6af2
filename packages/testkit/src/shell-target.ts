import os from "node:os";
import type { TerminalTarget } from "@nbfleet/agent";
import { makeDataDir } from "./data-dir.js";

/**
 * The terminal target a test's agent gives its shells: the user running the tests, but in a home
 * of its own, so a test's login shell never reads that user's dotfiles. Root's `.bashrc` on a
 * developer's machine runs whatever it likes (a stale `pyenv rehash` lock once hung every login
 * shell of a CI run). Only root can name itself as a user to switch to (setpriv sets its
 * groups); anyone else keeps its own home.
 */
export function testShellTarget(): TerminalTarget {
  if (process.getuid?.() !== 0) return { user: null };
  const own = os.userInfo();
  return { user: { user: own.username, uid: own.uid, gid: own.gid, home: makeDataDir("nbf-shell-home-") } };
}
