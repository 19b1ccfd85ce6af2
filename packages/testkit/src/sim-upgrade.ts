/**
 * `agent.upgrade` for simulated agents, as the real agent does it minus the unpacking: download
 * the version's artifact from the controller the agent is connected to (for real, every byte,
 * bounded by the command's `bytes`), check its size, SHA-256 and the release key's signature,
 * answer, then "restart": the connection closes, `restartMs` later the agent dials again
 * reporting the new version and sends `agent.upgrade.completed`. A refused artifact is answered
 * `NBF_ARTIFACT_REFUSED` and nothing changes. Each agent keeps a record of what it did.
 */
import { createHash } from "node:crypto";
import { type CommandMessage, agentArtifactFilePath } from "@nbfleet/shared";
import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import type { SimAgent } from "./sim-agent.js";

export interface SimUpgradeOptions {
  /** The simulated restart: from the answer until the new version dials. */
  restartMs: number;
  /** The release public key (SPKI PEM) signatures are checked with; without one, none is. */
  releasePublicKeyPem?: string;
}

/** What one agent did about upgrades, on its own clock. */
export interface UpgradeRecord {
  /** Command ids run (a repeated id is answered from memory, not run again). */
  runs: Array<{
    commandId: string;
    from: string;
    to: string;
    /** The command arrived, the download was checked, the answer left, the new version was welcomed. */
    receivedAt: number;
    downloadedAt: number | null;
    answeredAt: number;
    reconnectedAt: number | null;
    /**
     * The new version's first hello left: the controller counts the upgrade done on a hello (with
     * its state), never before this one.
     */
    helloAt: number | null;
    bytes: number;
    refused: string | null;
  }>;
  /** Bytes of artifacts received, whole or not. */
  bytesReceived: number;
}

type UpgradeParams = { version: string; sha256: string; signature: string; bytes: number };
type Outcome = { ok: boolean; data?: unknown; error?: { code: string; message: string } };

export class SimUpgrader {
  readonly record: UpgradeRecord = { runs: [], bytesReceived: 0 };
  private readonly outcomes = new Map<string, Outcome>();
  private readonly running = new Set<string>();

  constructor(
    private readonly agent: SimAgent,
    private readonly options: SimUpgradeOptions,
  ) {}

  /** Runs (or answers again) one `agent.upgrade` command; the ack was sent already. */
  handle(command: CommandMessage): void {
    const known = this.outcomes.get(command.id);
    if (known) {
      this.answer(command.id, known);
      return;
    }
    if (this.running.has(command.id)) return;
    this.running.add(command.id);
    this.run(command).catch((error: unknown) => {
      this.running.delete(command.id);
      this.answer(command.id, {
        ok: false,
        error: { code: "NBF_SIM_UPGRADE_FAILED", message: String(error) },
      });
    });
  }

  private async run(command: CommandMessage): Promise<void> {
    const params = command.params as unknown as UpgradeParams;
    const from = this.agent.version;
    const receivedAt = Date.now();
    if (params.version === from) {
      this.finish(command.id, { ok: true, data: { version: from, alreadyCurrent: true } });
      return;
    }
    const download = await this.download(params);
    const run: UpgradeRecord["runs"][number] = {
      commandId: command.id,
      from,
      to: params.version,
      receivedAt,
      downloadedAt: Date.now(),
      answeredAt: 0,
      reconnectedAt: null,
      helloAt: null,
      bytes: download.bytes,
      refused: download.refused,
    };
    this.record.runs.push(run);
    this.agent.executed.push({ at: receivedAt, command });
    if (download.refused) {
      run.answeredAt = Date.now();
      this.finish(command.id, {
        ok: false,
        error: { code: "NBF_ARTIFACT_REFUSED", message: download.refused },
      });
      return;
    }
    run.answeredAt = Date.now();
    this.finish(command.id, { ok: true, data: { from, to: params.version } });
    // Like the real agent: the answer leaves, then the process exits and its launcher starts
    // the new version, which dials again.
    this.agent.close(1001);
    await new Promise((resolve) => setTimeout(resolve, this.options.restartMs).unref());
    this.agent.version = params.version;
    this.agent.firstHelloAt = null;
    await this.dialAgain();
    run.reconnectedAt = Date.now();
    run.helloAt = this.agent.firstHelloAt;
    this.agent.sendMessage({
      type: "event",
      event: {
        at: new Date().toISOString(),
        kind: "agent.upgrade.completed",
        level: "info",
        message: `agent upgraded from ${from} to ${params.version}`,
        data: { from, to: params.version },
      },
    });
  }

  /**
   * Dials as the new version until welcomed. An agent with a reconnect policy redials by itself
   * after a refused attempt (a second dialler of ours would only replace its connections).
   */
  private async dialAgain(): Promise<void> {
    const welcomed = this.agent.waitFor(() => this.agent.connected, 120_000, "the new version welcomed");
    if (this.agent.options.reconnect) {
      this.agent.connect().catch(() => undefined);
      return welcomed;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await this.agent.connect();
        return welcomed;
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.random() * Math.min(5000, 50 * 2 ** attempt)),
        );
      }
    }
  }

  /** Reads the whole artifact; `refused` names the check that failed, as the real agent does. */
  private async download(params: UpgradeParams): Promise<{ bytes: number; refused: string | null }> {
    const url = `${this.agent.currentUrl()}${agentArtifactFilePath(params.version)}`;
    const response = await fetch(url);
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      return { bytes: 0, refused: `downloading ${url} answered HTTP ${response.status}` };
    }
    const hash = createHash("sha256");
    let bytes = 0;
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      bytes += chunk.byteLength;
      this.record.bytesReceived += chunk.byteLength;
      if (bytes > params.bytes) {
        await response.body.cancel().catch(() => undefined);
        return { bytes, refused: `the artifact is larger than the ${params.bytes} bytes announced` };
      }
      hash.update(chunk);
    }
    if (bytes !== params.bytes)
      return { bytes, refused: `the artifact has ${bytes} bytes, ${params.bytes} were announced` };
    const sha256 = hash.digest("hex");
    if (sha256 !== params.sha256)
      return { bytes, refused: `the artifact's sha256 is ${sha256}, not the announced ${params.sha256}` };
    const key = this.options.releasePublicKeyPem;
    if (key && !verifyArtifact(key, params.version, sha256, params.signature))
      return { bytes, refused: `the artifact's signature does not verify with the release key` };
    return { bytes, refused: null };
  }

  private finish(commandId: string, outcome: Outcome): void {
    this.running.delete(commandId);
    this.outcomes.set(commandId, outcome);
    this.answer(commandId, outcome);
  }

  private answer(commandId: string, outcome: Outcome): void {
    this.agent.sendMessage({ type: "result", commandId, ...outcome });
  }
}
