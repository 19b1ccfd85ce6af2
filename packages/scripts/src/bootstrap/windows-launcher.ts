/**
 * The Windows agent launcher (`run-agent.ps1`, run by the nbfleet-agent scheduled task): the same
 * loop and upgrade watchdog as the Linux one (launcher.ts). It starts the agent from
 * `<install>\current` (a junction), starts a switched version at once (exit 75), and while
 * `upgrade.json` is pending rolls back — `current` to the upgrade's `fromDir`, `rollback.json`
 * {from, to, reason, at}, `upgrade.json` and `previous` removed — after the new agent's third
 * exit or at its deadline (the agent is stopped; the notebook server it started is a process of
 * its own and keeps running).
 */
import { powershellQuote } from "@nbfleet/shared/quote";
import { UPGRADE_EXIT_CODE, UPGRADE_MAX_EXITS } from "./launcher.js";

export interface WindowsLauncherSpec {
  installDir: string;
  /** The Node.js executable; the bootstrap replaces a placeholder with the one it found. */
  node: string;
  /** The agent's arguments as one Windows command line (CommandLineToArgvW quoting). */
  commandLine: string;
  /** stdout goes here, stderr beside it (`.err.log`); the previous start's are kept as `.1`. */
  consoleLog: string;
}

export function renderWindowsLauncher(spec: WindowsLauncherSpec): string {
  const errLog = spec.consoleLog.replace(/\.log$/, ".err.log");
  return `# nbfleet agent launcher, rewritten by the nbfleet bootstrap on every run; do not edit.
$ErrorActionPreference = 'Continue'
$install = ${powershellQuote(spec.installDir)}
$node = ${powershellQuote(spec.node)}
$agentCommandLine = ${powershellQuote(spec.commandLine)}
$consoleLog = ${powershellQuote(spec.consoleLog)}
$consoleErrLog = ${powershellQuote(errLog)}
$upgradeFile = Join-Path $install 'upgrade.json'
Set-Location -LiteralPath $install
$exits = 0

function Say([string]$Message) {
  Add-Content -LiteralPath $consoleErrLog -Value "nbfleet-launcher: $Message" -Encoding utf8
}

function Read-Upgrade {
  if (-not (Test-Path -LiteralPath $upgradeFile)) { return $null }
  try { return Get-Content -Raw -LiteralPath $upgradeFile | ConvertFrom-Json } catch { return $null }
}

# The upgrade this start was watching is still the pending one (not confirmed, not replaced).
function Test-StillPending([string]$Watched) {
  $now = Read-Upgrade
  return [bool]($now -and "$($now.commandId)" -eq $Watched)
}

function Test-DeadlinePassed($Pending) {
  return [DateTimeOffset]::UtcNow.ToUnixTimeSeconds() -ge [long]$Pending.deadlineUnix
}

# A junction is removed with rmdir (Remove-Item -Recurse would empty its target).
function Remove-Junction([string]$Path) {
  if (Test-Path -LiteralPath $Path) { & cmd.exe /c rmdir "$Path" | Out-Null }
}

function Invoke-Rollback([string]$Reason) {
  $pending = Read-Upgrade
  if ($pending -and $pending.fromDir -and (Test-Path -LiteralPath (Join-Path $install $pending.fromDir))) {
    $next = Join-Path $install 'current.rollback'
    Remove-Junction $next
    New-Item -ItemType Junction -Path $next -Target (Join-Path $install $pending.fromDir) | Out-Null
    Remove-Junction (Join-Path $install 'current')
    Rename-Item -LiteralPath $next -NewName 'current'
  }
  $record = [ordered]@{
    from = "$($pending.from)"
    to = "$($pending.to)"
    reason = $Reason
    at = [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ')
  } | ConvertTo-Json -Compress
  [IO.File]::WriteAllText((Join-Path $install 'rollback.json.partial'), "$record\`n")
  Move-Item -Force -LiteralPath (Join-Path $install 'rollback.json.partial') -Destination (Join-Path $install 'rollback.json')
  Remove-Item -Force -LiteralPath $upgradeFile -ErrorAction SilentlyContinue
  Remove-Junction (Join-Path $install 'previous')
  $script:exits = 0
  Say "rolled back from $($pending.to) to $($pending.from): $Reason"
}

while ($true) {
  $pending = Read-Upgrade
  if ($pending -and (Test-DeadlinePassed $pending)) {
    Invoke-Rollback 'the new agent did not connect and report healthy by its deadline'
    $pending = $null
  }
  $watched = if ($pending) { "$($pending.commandId)" } else { '' }
  foreach ($log in @($consoleLog, $consoleErrLog)) {
    if (Test-Path -LiteralPath $log) { Move-Item -Force -LiteralPath $log -Destination "$log.1" }
  }
  $process = Start-Process -FilePath $node -ArgumentList $agentCommandLine -NoNewWindow -PassThru \`
    -RedirectStandardOutput $consoleLog -RedirectStandardError $consoleErrLog
  # Read once now: a Process from Start-Process reports no ExitCode unless its handle was taken.
  $null = $process.Handle
  $deadlinePassed = $false
  while (-not $process.WaitForExit(1000)) {
    # The new agent confirms by removing upgrade.json: the watch then stands down.
    if ($pending -and (Test-StillPending $watched) -and (Test-DeadlinePassed $pending)) {
      Stop-Process -Id $process.Id -Force -ErrorAction SilentlyContinue
      $process.WaitForExit()
      $deadlinePassed = $true
    }
  }
  $status = $process.ExitCode
  if ($deadlinePassed -and (Test-StillPending $watched)) {
    Invoke-Rollback 'the new agent did not connect and report healthy by its deadline'
    continue
  }
  # 75 is a switch, never a failure: it may start a new upgrade (a new upgrade.json).
  if ($pending -and $status -ne ${UPGRADE_EXIT_CODE} -and (Test-StillPending $watched)) {
    $exits += 1
    if ($exits -ge ${UPGRADE_MAX_EXITS}) {
      Invoke-Rollback "the new agent exited ${UPGRADE_MAX_EXITS} times (last status $status)"
      continue
    }
  }
  if ($status -eq ${UPGRADE_EXIT_CODE}) {
    $exits = 0
    Say 'the agent switched versions; starting the new current one'
    continue
  }
  Say "the agent exited (status $status); starting it again in 1 s"
  Start-Sleep -Seconds 1
}
`;
}
