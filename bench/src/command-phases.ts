/**
 * Where a bulk operation's slot turnaround goes, read back from the commands table after the
 * operation: the i-th stored result frees the slot that the (i + concurrency)-th command takes,
 * so `resultToNextCreated` is the runner's share (result stored → signal → runner → next command
 * committed) and `createdToSent` the owning replica's (command committed → signal → claimed and
 * sent). All stamps come from the replicas' clocks on one machine.
 */
import { queryRows } from "@nbfleet/testkit/postgres-client";
import { type MeanSpread, meanSpread } from "./operation-records.js";

export interface CommandPhases {
  resultToNextCreatedMs: MeanSpread;
  createdToSentMs: MeanSpread;
  /** Sent until its result was stored, less the simulated restart's own time. */
  sentToFinishedLessDelayMs: MeanSpread;
}

export async function commandPhases(
  databaseUrl: string,
  operationId: string,
  options: { concurrency: number; delayMs: number },
): Promise<CommandPhases> {
  const rows = await queryRows<{ created_at: string; sent_at: string | null; finished_at: string | null }>(
    databaseUrl,
    "SELECT created_at, sent_at, finished_at FROM commands WHERE operation_id = $1",
    [operationId],
  );
  const ms = (at: string | null) => (at === null ? Number.NaN : Date.parse(at));
  const created = rows.map((r) => ms(r.created_at)).sort((a, b) => a - b);
  const finished = rows
    .map((r) => ms(r.finished_at))
    .filter((at) => !Number.isNaN(at))
    .sort((a, b) => a - b);
  const refills: number[] = [];
  for (let i = 0; i + options.concurrency < created.length && i < finished.length; i++)
    refills.push(created[i + options.concurrency]! - finished[i]!);
  const sent = rows.filter((r) => r.sent_at !== null);
  return {
    resultToNextCreatedMs: meanSpread(refills),
    createdToSentMs: meanSpread(sent.map((r) => ms(r.sent_at) - ms(r.created_at))),
    sentToFinishedLessDelayMs: meanSpread(
      sent
        .filter((r) => r.finished_at !== null)
        .map((r) => ms(r.finished_at) - ms(r.sent_at) - options.delayMs),
    ),
  };
}
