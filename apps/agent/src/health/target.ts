/**
 * What the health checks look at: one notebook server, reached on loopback with the
 * agent-only token, plus the files and process the agent knows it by.
 */
import type { WriteProblem } from "../util/write-failures.js";

export interface CheckTarget {
  /** Where the agent reaches the server, usually 127.0.0.1 even when it listens on 0.0.0.0. */
  host: string;
  port: number;
  /** The server's base_url, e.g. "/" or "/nb/". */
  baseUrl: string;
  /** The agent-only token (NotebookApp.token / IdentityProvider.token). */
  token: string;
  pid: number | null;
  /** The certificate the server should be serving (the profile's cert.pem). */
  certFile: string;
  /** A path on the disk whose fullness matters (the notebook directory). */
  diskPath: string;
  /** The agent's data directory, whose disk matters too (named first when it is the same one). */
  dataDir?: string;
  /** The agent's own writes that keep failing (a full disk shows here before statfs says 100 %). */
  writeProblems?: WriteProblem[];
}
