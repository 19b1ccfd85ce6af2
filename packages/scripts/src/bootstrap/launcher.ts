/**
 * The Linux agent launcher (`run-agent.sh`): a POSIX `sh` loop that starts the agent from
 * `<install>/current` and starts it again when it ends, and the upgrade watchdog around it.
 *
 * The agent switches `current` to a new version, writes `upgrade.json` and exits with status 75:
 * the loop starts the new version at once. While `upgrade.json` is there (the new agent removes
 * it once it is connected and healthy), the loop watches: if the new agent exits 3 times, or the
 * file's deadline passes (the agent is then stopped with SIGTERM, which leaves the notebook
 * server running), it points `current` back at the version the upgrade came from, writes
 * `rollback.json` {from, to, reason, at} (the agent reports it), removes `upgrade.json` and
 * `previous`, and starts the old version. SIGINT (stop the notebook too) and SIGTERM (leave it
 * for the next agent) are passed on to the agent and end the loop.
 *
 * Under systemd the same loop is the service's main process; the unit's Restart=always stays
 * as the backstop for the loop itself.
 */
import { shellWord } from "@nbfleet/shared/quote";

export const UPGRADE_EXIT_CODE = 75;
/** Exits of a new version, while its upgrade is pending, that roll it back. */
export const UPGRADE_MAX_EXITS = 3;
/** How long an agent stopped at its upgrade deadline has before SIGKILL. */
const STOP_GRACE_SEC = 10;

export interface LauncherSpec {
  installDir: string;
  /** The agent's command line, each word as is (quoted here). */
  argv: string[];
  /** Sandbox: the launcher writes "PID STARTTIME" here (the controller signals it through it). */
  pidFile?: string;
}

export function renderLauncherScript(spec: LauncherSpec): string {
  const argv = spec.argv.map(shellWord).join(" ");
  return [
    "#!/bin/sh",
    "# nbfleet agent launcher, rewritten by the nbfleet bootstrap on every run; do not edit.",
    "cd /",
    `install=${shellWord(spec.installDir)}`,
    ...(spec.pidFile ? pidLines(spec.pidFile) : []),
    WATCHDOG,
    // The agent's command line, as the positional parameters (readers of this file find it here).
    `set -- ${argv}`,
    "while :; do",
    "  pending=0",
    "  watched=''",
    '  if [ -f "$install/upgrade.json" ]; then',
    "    pending=1",
    "    watched=$(field commandId)",
    "    deadline=$(field deadlineUnix)",
    '    if [ -n "$deadline" ] && [ "$(date +%s)" -ge "$deadline" ]; then',
    '      rollback "the new agent did not connect and report healthy by its deadline"',
    "      pending=0",
    "    fi",
    "  fi",
    '  "$@" &',
    "  child=$!",
    "  status=0",
    "  watcher=''",
    '  if [ "$pending" = 1 ]; then',
    '    rm -f "$install/upgrade.deadline"',
    "    watch_upgrade &",
    "    watcher=$!",
    "  fi",
    '  wait "$child" || status=$?',
    '  while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done',
    "  child=''",
    '  if [ -n "$watcher" ]; then',
    '    kill "$watcher" 2>/dev/null',
    '    wait "$watcher" 2>/dev/null',
    "  fi",
    '  [ "$stopping" = 1 ] && exit 0',
    '  if [ "$pending" = 1 ] && [ -f "$install/upgrade.deadline" ]; then',
    '    rm -f "$install/upgrade.deadline"',
    "    if still_pending; then",
    '      rollback "the new agent did not connect and report healthy by its deadline"',
    "      continue",
    "    fi",
    "  fi",
    // 75 is a switch, never a failure: it may start a new upgrade (a new upgrade.json).
    `  if [ "$pending" = 1 ] && [ "$status" != ${UPGRADE_EXIT_CODE} ] && still_pending; then`,
    "    exits=$((exits + 1))",
    `    if [ "$exits" -ge ${UPGRADE_MAX_EXITS} ]; then`,
    `      rollback "the new agent exited ${UPGRADE_MAX_EXITS} times (last status $status)"`,
    "      continue",
    "    fi",
    "  fi",
    `  if [ "$status" = ${UPGRADE_EXIT_CODE} ]; then`,
    "    exits=0",
    '    echo "nbfleet-launcher: the agent switched versions; starting $(readlink "$install/current")" >&2',
    "    continue",
    "  fi",
    '  echo "nbfleet-launcher: the agent exited (status $status); starting it again in 1 s" >&2',
    "  sleep 1",
    "done",
  ].join("\n");
}

// "PID STARTTIME": the start time (field 22 of /proc/$$/stat; the command name "sh" has no
// spaces) lets the controller check the pid still names this launcher before it signals.
function pidLines(pidFile: string): string[] {
  return [
    "nbf_start=''",
    "if [ -r /proc/$$/stat ]; then read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ nbf_start _ </proc/$$/stat; fi",
    `echo "$$ $nbf_start" > ${shellWord(pidFile)}`,
  ];
}

// upgrade.json is one line of JSON written by the agent; its values (versions, directories,
// numbers) hold no quotes, commas or braces, so sed reads them.
const WATCHDOG = `child=''
stopping=0
exits=0
trap 'stopping=1; [ -n "$child" ] && kill -INT "$child" 2>/dev/null' INT
trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
field() {
  sed -n "s/.*\\"$1\\":\\"\\{0,1\\}\\([^\\",}]*\\).*/\\1/p" "$install/upgrade.json" 2>/dev/null | head -n 1
}
# The upgrade this start was watching is still the pending one (not confirmed, not replaced).
still_pending() {
  [ -f "$install/upgrade.json" ] && [ "$(field commandId)" = "$watched" ]
}
# Points current back at the version the pending upgrade came from, and says why in rollback.json.
rollback() {
  from=$(field from)
  to=$(field to)
  from_dir=$(field fromDir)
  if [ -n "$from_dir" ] && [ -d "$install/$from_dir" ]; then
    rm -f "$install/current.rollback"
    ln -s "$from_dir" "$install/current.rollback"
    mv -Tf "$install/current.rollback" "$install/current" 2>/dev/null ||
      { rm -f "$install/current.rollback"; ln -sfn "$from_dir" "$install/current"; }
  fi
  printf '{"from":"%s","to":"%s","reason":"%s","at":"%s"}\\n' "$from" "$to" "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$install/rollback.json.partial"
  mv -f "$install/rollback.json.partial" "$install/rollback.json"
  rm -f "$install/upgrade.json" "$install/previous"
  exits=0
  echo "nbfleet-launcher: rolled back from $to to $from: $1" >&2
}
# In the background while the new agent runs: its confirmation (upgrade.json removed) ends the
# watch; its deadline stops it (SIGTERM: the notebook server keeps running; SIGKILL after a
# grace) and leaves upgrade.deadline for the loop, which rolls back.
watch_upgrade() {
  trap - INT TERM
  while still_pending; do
    if [ -n "$deadline" ] && [ "$(date +%s)" -ge "$deadline" ]; then
      : >"$install/upgrade.deadline"
      kill -TERM "$child" 2>/dev/null
      waited=0
      while kill -0 "$child" 2>/dev/null && [ "$waited" -lt ${STOP_GRACE_SEC} ]; do
        sleep 1
        waited=$((waited + 1))
      done
      if kill -0 "$child" 2>/dev/null; then kill -KILL "$child" 2>/dev/null; fi
      return 0
    fi
    sleep 1
  done
}`;
