/**
 * Which secret the next dial presents: the stored credential, unless the controller refused it
 * and a bootstrap token is at hand to get a new one. A credential the controller issues is
 * stored before it is used; one that cannot be written is used from memory.
 */
import { readCredential, storeCredential } from "./credential.js";
import type { LinkLog } from "./log.js";

export type Presented = "credential" | "bootstrap";

export interface Secret {
  value: string;
  presented: Presented;
}

export class LinkSecrets {
  /** A credential the controller refused; with a bootstrap token at hand it is not presented again. */
  private refusedCredential: string | null = null;
  /** A credential that could not be written to disk is still used from memory. */
  private memoryCredential: string | null = null;

  constructor(
    private readonly credentialFile: string,
    private readonly bootstrapToken: string | undefined,
  ) {}

  /** Whether there is anything to dial with at all. */
  async any(): Promise<boolean> {
    return (await this.storedCredential()) !== null || Boolean(this.bootstrapToken);
  }

  async pick(): Promise<Secret | null> {
    const stored = await this.storedCredential();
    const { bootstrapToken } = this;
    if (stored && !(bootstrapToken && stored === this.refusedCredential)) {
      return { value: stored, presented: "credential" };
    }
    if (bootstrapToken) return { value: bootstrapToken, presented: "bootstrap" };
    return null;
  }

  /** The controller refused `secret` as unknown. */
  refused(secret: Secret): void {
    if (secret.presented === "credential") this.refusedCredential = secret.value;
  }

  /**
   * Stores a credential the controller issued. Should this agent never get to store it, the
   * bootstrap token still works: the controller keeps it until a connection with this
   * credential arrives.
   */
  async adopt(credential: string, log: LinkLog): Promise<void> {
    const file = this.credentialFile;
    try {
      await storeCredential(file, credential);
      this.memoryCredential = null;
      log.info(`stored the agent credential at ${file} (mode 0600); the bootstrap token is spent`);
    } catch (error) {
      this.memoryCredential = credential;
      log.error(
        `could not store the agent credential at ${file} (${(error as Error).message}); ` +
          "it is kept in memory only and will be lost when the agent stops",
      );
    }
    this.refusedCredential = null;
  }

  private async storedCredential(): Promise<string | null> {
    return (await readCredential(this.credentialFile)) ?? this.memoryCredential;
  }
}
