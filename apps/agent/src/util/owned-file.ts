/**
 * Setting a file's or directory's mode and owner as root without following a symbolic link: the
 * path is opened with O_NOFOLLOW and changed through that handle, so a link planted under the
 * name (by the notebook's user, say) makes this fail instead of handing over the link's target.
 * Without `mode` the mode stays as it is.
 */
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { AgentError } from "../errors.js";
import type { FileOwner } from "./atomic-write.js";

type Kind = "file" | "directory";

export async function setModeAndOwner(
  target: string,
  kind: Kind,
  settings: { mode?: number; owner?: FileOwner | null },
): Promise<void> {
  const handle = await openNoFollow(target, kind);
  try {
    if (settings.mode !== undefined) await handle.chmod(settings.mode);
    if (settings.owner) await handle.chown(settings.owner.uid, settings.owner.gid);
  } finally {
    await handle.close();
  }
}

async function openNoFollow(target: string, kind: Kind): Promise<FileHandle> {
  const flags =
    constants.O_RDONLY |
    constants.O_NOFOLLOW |
    constants.O_NONBLOCK |
    (kind === "directory" ? constants.O_DIRECTORY : 0);
  let handle: FileHandle;
  try {
    handle = await open(target, flags);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || code === "ENOTDIR")
      throw notA(target, kind, "a symbolic link or another kind of file");
    throw error;
  }
  const info = await handle.stat();
  // A second name for a file is as good as a link to it (where hard links to others' files
  // are allowed): a file the agent wrote has one.
  if (kind === "file" ? info.isFile() && info.nlink === 1 : info.isDirectory()) return handle;
  await handle.close();
  throw notA(
    target,
    kind,
    info.isFile() ? `a file with ${info.nlink} names (hard links)` : "another kind of file",
  );
}

function notA(target: string, kind: Kind, found: string): AgentError {
  return new AgentError(
    "NBF_UNSAFE_PATH",
    `${target} must be a ${kind === "file" ? "regular file" : "directory"}, and is ${found}; remove it and try again`,
    { file: target },
  );
}
