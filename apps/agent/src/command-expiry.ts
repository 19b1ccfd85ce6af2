/**
 * Whether a command arrived too late to start. The controller says how long the command had
 * left when it sent it (`ttlMs`, counted on its clock), so this guest's clock does not enter into
 * it: a guest minutes or hours ahead refused every command as expired, one behind started
 * commands the controller had given up on. A command from a controller before `ttlMs` carries
 * only its `deadline`, on the controller's clock, and is judged by this guest's.
 */
import type { CommandMessage } from "@nbfleet/shared";

export function expiredOnArrival(command: CommandMessage, now = Date.now()): boolean {
  if (command.ttlMs !== undefined) return command.ttlMs === 0;
  return command.deadline !== undefined && now > command.deadline;
}
