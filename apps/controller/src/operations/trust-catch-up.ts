/**
 * The controller certificates in effect after a controller.trust, kept in `cluster_settings`
 * (one row, written in the operation's own transaction), and sent again to every agent that
 * comes along holding another set: a machine created after the operation started (its bootstrap
 * pins only the certificate its replica served) or one that was offline past its command's TTL.
 * The agent names the set it holds in its hello (`controllerTrust`, a trustSetId), so an agent
 * that has it costs nothing; one command per agent and set at most (its id is derived from both,
 * so reconnecting agents are not sent it twice). The agent still refuses a set that would lock
 * it out (its answer fails that command, nothing else).
 */
import { CAPABILITY_CONTROLLER_TRUST, type CommandParamsOf, type HelloMessage } from "@nbfleet/shared";
import { trustSetId } from "@nbfleet/shared/certificate-pin";
import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { CommandService } from "../commands/service.js";
import { CachedFigure } from "../metrics/cached-figure.js";
import { isUniqueViolation } from "../store/db.js";
import type { Database } from "../store/schema.js";

const TRUST_SET_SETTING = "controller_trust";
/** How long a replica keeps the set it read (a failed read too): another replica's new operation reaches it within this. */
const CACHE_MS = 10_000;

type Pins = CommandParamsOf<"controller.trust">["pins"];

export interface TrustSet {
  id: string;
  pins: Pins;
  operationId: string;
  at: string;
}

/** Stores `pins` as the set in effect (in the transaction that creates its operation). */
export async function recordTrustSet(db: Kysely<Database>, pins: Pins, operationId: string): Promise<void> {
  const value = JSON.stringify({ id: trustSetId(pins), pins, operationId, at: new Date().toISOString() });
  await db
    .insertInto("cluster_settings")
    .values({ name: TRUST_SET_SETTING, value })
    .onConflict((conflict) => conflict.column("name").doUpdateSet({ value }))
    .execute();
}

export interface TrustCatchUpOptions {
  db: Kysely<Database>;
  commands: CommandService;
  log: FastifyBaseLogger;
  cacheMs?: number;
}

export class TrustCatchUp {
  private readonly inEffect: CachedFigure<TrustSet | null>;

  constructor(private readonly options: TrustCatchUpOptions) {
    this.inEffect = new CachedFigure(() => this.read(), {
      maxAgeMs: options.cacheMs ?? CACHE_MS,
      onError: (error) =>
        options.log.error({ err: error }, "reading the controller certificates in effect failed"),
    });
  }

  /** Called for every hello: queues the set in effect for an agent that holds another. */
  onHello(vmName: string, hello: Pick<HelloMessage, "capabilities" | "controllerTrust">): void {
    if (!hello.capabilities.includes(CAPABILITY_CONTROLLER_TRUST)) return;
    void this.catchUp(vmName, hello.controllerTrust).catch((error) =>
      this.options.log.error(
        { err: error, vm: vmName },
        "sending the controller certificates in effect failed",
      ),
    );
  }

  /** A new set is in effect (an operation created here): read it again at the next hello. */
  forget(): void {
    this.inEffect.invalidate();
  }

  private async catchUp(vmName: string, holds: string | undefined): Promise<void> {
    const set = await this.inEffect.get();
    if (!set || set.id === holds) return;
    try {
      await this.options.commands.enqueue({
        id: `cmd_trust_${set.id}_${vmName}`,
        vmName,
        name: "controller.trust",
        params: { pins: set.pins },
      });
      this.options.log.info(
        { vm: vmName, set: set.id, operation: set.operationId },
        "sent the controller certificates in effect to an agent holding another set",
      );
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
    }
  }

  private async read(): Promise<TrustSet | null> {
    const row = await this.options.db
      .selectFrom("cluster_settings")
      .select("value")
      .where("name", "=", TRUST_SET_SETTING)
      .executeTakeFirst();
    return row ? (JSON.parse(row.value) as TrustSet) : null;
  }
}
