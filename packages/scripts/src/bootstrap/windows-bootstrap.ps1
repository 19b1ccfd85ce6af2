# nbfleet guest bootstrap for Windows Server, rendered by @nbfleet/scripts (renderWindowsBootstrap); do not edit.
# Run as Administrator (Azure CustomScriptExtension runs it as SYSTEM). Installs Python with
# Jupyter, matplotlib and NumPy (pip), Node.js, and the agent artifact after checking its
# SHA-256 into versions\<version> (current and previous are junctions); runs the agent's launcher
# (its loop, and the rollback of an upgrade the new agent did not confirm) as a SYSTEM scheduled
# task that starts at boot and is restarted when it stops; opens the notebook port in Windows
# Firewall. Safe to run again.
# Not yet exercised on a real Windows machine.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version 3
[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12

# nbfleet:settings

function Say([string]$Message) { Write-Output "nbfleet-bootstrap: $Message" }
function Fail([string]$Message) { throw "nbfleet-bootstrap: error: $Message" }

function Update-SessionPath {
  $machine = [Environment]::GetEnvironmentVariable('Path', 'Machine')
  $user = [Environment]::GetEnvironmentVariable('Path', 'User')
  $env:Path = "$machine;$user"
}

# How a download's TLS certificate is judged: by Windows' own trust store, or — for the
# controller, when one is given — by its CA alone (the chain must end at exactly that CA) or
# by its pinned SHA-256 fingerprint. Validation is never switched off.
Add-Type -TypeDefinition @"
using System;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
public static class NbfTlsTrust {
  public static string PinnedSha256;
  public static X509Certificate2 Ca;
  public static readonly RemoteCertificateValidationCallback Callback = Check;
  public static bool Check(object sender, X509Certificate certificate, X509Chain chain, SslPolicyErrors errors) {
    if (certificate == null) return false;
    X509Certificate2 served = new X509Certificate2(certificate);
    if (PinnedSha256 != null) {
      using (SHA256 sha = SHA256.Create()) {
        return BitConverter.ToString(sha.ComputeHash(served.RawData)).Replace("-", "") == PinnedSha256;
      }
    }
    if (Ca != null) {
      if ((errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None) return false;
      X509Chain own = new X509Chain();
      own.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
      own.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
      own.ChainPolicy.ExtraStore.Add(Ca);
      if (!own.Build(served)) return false;
      X509Certificate2 root = own.ChainElements[own.ChainElements.Count - 1].Certificate;
      return root.RawData.Length == Ca.RawData.Length && root.Thumbprint == Ca.Thumbprint;
    }
    return errors == SslPolicyErrors.None;
  }
}
"@

function Get-File([string]$Url, [string]$OutFile, [switch]$Controller) {
  $previous = [Net.ServicePointManager]::ServerCertificateValidationCallback
  try {
    [NbfTlsTrust]::PinnedSha256 = $null
    [NbfTlsTrust]::Ca = $null
    if ($Controller -and $NbfControllerFingerprint) {
      [NbfTlsTrust]::PinnedSha256 = $NbfControllerFingerprint.Replace(':', '').ToUpperInvariant()
    } elseif ($Controller -and $NbfControllerCaPem) {
      $base64 = [regex]::Match($NbfControllerCaPem, '-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----').Groups[1].Value
      [NbfTlsTrust]::Ca = [Security.Cryptography.X509Certificates.X509Certificate2]::new([Convert]::FromBase64String(($base64 -replace '\s', '')))
    }
    [Net.ServicePointManager]::ServerCertificateValidationCallback = [NbfTlsTrust]::Callback
    Invoke-WebRequest -Uri $Url -OutFile $OutFile -UseBasicParsing
  } catch {
    Fail "could not download ${Url}: $($_.Exception.Message)"
  } finally {
    [Net.ServicePointManager]::ServerCertificateValidationCallback = $previous
  }
}

function Assert-Sha256([string]$File, [string]$Expected, [string]$What) {
  $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $File).Hash.ToLowerInvariant()
  if ($actual -ne $Expected.ToLowerInvariant()) {
    Remove-Item -LiteralPath $File -Force
    Fail "checksum mismatch for ${What}: expected sha256 $Expected, got sha256 $actual; refusing to install it"
  }
  Say "checksum ok: sha256 $actual"
}

function Write-Secret([string]$File, [string]$Content) {
  [IO.File]::WriteAllText($File, "$Content`n")
  # Only SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544) may read it.
  & icacls.exe $File /inheritance:r /grant:r '*S-1-5-18:(R)' '*S-1-5-32-544:(F)' | Out-Null
  if ($LASTEXITCODE -ne 0) { Fail "icacls could not restrict $File" }
}

function Find-Python {
  foreach ($candidate in @('py.exe', 'python.exe')) {
    $command = Get-Command $candidate -ErrorAction SilentlyContinue
    # The WindowsApps python.exe is a Store stub that only opens the Store.
    if ($command -and $command.Source -notlike '*\WindowsApps\*') {
      $exe = & $command.Source -3 -c 'import sys; print(sys.executable)' 2>$null
      if (-not $exe) { $exe = & $command.Source -c 'import sys; print(sys.executable)' 2>$null }
      if ($LASTEXITCODE -eq 0 -and $exe) { return ($exe | Select-Object -First 1).Trim() }
    }
  }
  return $null
}

function Install-Python {
  $python = Find-Python
  if ($python) { Say "using Python at $python"; return $python }
  $installer = Join-Path $NbfWork "python-$NbfPythonVersion-amd64.exe"
  $url = "https://www.python.org/ftp/python/$NbfPythonVersion/python-$NbfPythonVersion-amd64.exe"
  Say "installing Python $NbfPythonVersion from $url"
  Get-File $url $installer
  $signature = Get-AuthenticodeSignature -LiteralPath $installer
  if ($signature.Status -ne 'Valid' -or $signature.SignerCertificate.Subject -notlike '*Python Software Foundation*') {
    Fail "the Python installer's signature is not a valid Python Software Foundation signature ($($signature.Status))"
  }
  $process = Start-Process -FilePath $installer -ArgumentList '/quiet', 'InstallAllUsers=1', 'PrependPath=1', 'Include_test=0' -Wait -PassThru
  if ($process.ExitCode -ne 0) { Fail "the Python installer exited with $($process.ExitCode)" }
  Update-SessionPath
  $python = Find-Python
  if (-not $python) { Fail 'Python is still not found after installing it' }
  return $python
}

function Install-Jupyter([string]$Python) {
  Say 'installing Jupyter, matplotlib and NumPy with pip'
  & $Python -m pip install --disable-pip-version-check --upgrade notebook matplotlib numpy ipykernel
  if ($LASTEXITCODE -ne 0) { Fail "pip install notebook matplotlib numpy ipykernel failed ($LASTEXITCODE)" }
}

function Find-Node {
  $command = Get-Command node.exe -ErrorAction SilentlyContinue
  if (-not $command) { return $null }
  $major = & $command.Source -e 'process.stdout.write(process.versions.node.split(".")[0])'
  if ([int]$major -ge 20) { return $command.Source }
  Say "found Node.js $(& $command.Source --version) at $($command.Source); the agent needs >= 20"
  return $null
}

function Install-Node {
  $node = Find-Node
  if ($node) { Say "using Node.js at $node"; return $node }
  Get-File "$NbfNodeDistUrl/SHASUMS256.txt" (Join-Path $NbfWork 'SHASUMS256.txt')
  $line = Get-Content (Join-Path $NbfWork 'SHASUMS256.txt') | Where-Object { $_ -match '  node-v\d+\.\d+\.\d+-x64\.msi$' } | Select-Object -First 1
  if (-not $line) { Fail "$NbfNodeDistUrl/SHASUMS256.txt lists no node-v*-x64.msi" }
  $sum, $name = $line -split '\s+', 2
  $msi = Join-Path $NbfWork $name
  Say "installing Node.js from $NbfNodeDistUrl/$name"
  Get-File "$NbfNodeDistUrl/$name" $msi
  Assert-Sha256 $msi $sum "$NbfNodeDistUrl/$name"
  $process = Start-Process -FilePath 'msiexec.exe' -ArgumentList '/i', "`"$msi`"", '/qn', '/norestart' -Wait -PassThru
  if ($process.ExitCode -ne 0) { Fail "the Node.js installer exited with $($process.ExitCode)" }
  Update-SessionPath
  $node = Find-Node
  if (-not $node) { Fail 'Node.js >= 20 is still not found after installing it' }
  return $node
}

# Remove-Item -Recurse on a junction would empty its target: rmdir removes the link alone.
function Remove-Junction([string]$Path) {
  if (Test-Path -LiteralPath $Path) { & cmd.exe /c rmdir "$Path" | Out-Null }
}

function Set-Junction([string]$Path, [string]$Target) {
  Remove-Junction $Path
  New-Item -ItemType Junction -Path $Path -Target $Target | Out-Null
}

# The artifact goes to versions\<version> (versions\<sha256> without a version) beside whatever
# runs now; `current` (a junction) points at it and `previous` at the one it replaces; older
# ones are dropped. Running the same bootstrap again keeps the version an upgrade installed since
# (bootstrap-artifact records what this bootstrap last installed).
function Install-Artifact {
  $name = if ($NbfArtifactVersion) { $NbfArtifactVersion } else { $NbfArtifactSha256 }
  $versionDir = Join-Path $NbfInstallDir "versions\$name"
  $current = Join-Path $NbfInstallDir 'current'
  $marker = Join-Path $NbfInstallDir 'bootstrap-artifact'
  $currentTarget = if (Test-Path -LiteralPath $current) { (Get-Item -LiteralPath $current).Target } else { $null }
  if ($currentTarget -is [array]) { $currentTarget = $currentTarget[0] }
  $installedBefore = (Test-Path -LiteralPath $marker) -and ((Get-Content -Raw -LiteralPath $marker).Trim() -eq $NbfArtifactSha256)
  if ($installedBefore -and $currentTarget -and (Test-Path -LiteralPath (Join-Path $current 'nbfleet-agent.mjs'))) {
    Say "agent artifact sha256 $NbfArtifactSha256 was installed before; keeping $currentTarget"
    return
  }
  $shaFile = Join-Path $versionDir '.nbfleet-sha256'
  $sameBytes = -not (Test-Path -LiteralPath $shaFile) -or ((Get-Content -Raw -LiteralPath $shaFile).Trim() -eq $NbfArtifactSha256)
  if ((Test-Path -LiteralPath (Join-Path $versionDir 'nbfleet-agent.mjs')) -and $sameBytes) {
    Say "agent artifact $name (sha256 $NbfArtifactSha256) is already installed"
  } else {
    $archive = Join-Path $NbfWork 'nbfleet-agent.tar.gz'
    Say "downloading the agent artifact from $NbfArtifactUrl"
    Get-File $NbfArtifactUrl $archive -Controller
    Assert-Sha256 $archive $NbfArtifactSha256 $NbfArtifactUrl
    $partial = "$versionDir.partial"
    if (Test-Path -LiteralPath $partial) { Remove-Item -LiteralPath $partial -Recurse -Force }
    New-Item -ItemType Directory -Force -Path $partial | Out-Null
    & tar.exe -xzf $archive -C $partial
    if ($LASTEXITCODE -ne 0) { Fail "tar could not unpack $archive" }
    if (-not (Test-Path -LiteralPath (Join-Path $partial 'nbfleet-agent.mjs'))) { Fail "the artifact from $NbfArtifactUrl has no nbfleet-agent.mjs" }
    [IO.File]::WriteAllText((Join-Path $partial '.nbfleet-sha256'), "$NbfArtifactSha256`n")
    if ((Test-Path -LiteralPath $versionDir) -and ($currentTarget -ne $versionDir)) { Remove-Item -LiteralPath $versionDir -Recurse -Force }
    Move-Item -LiteralPath $partial -Destination $versionDir
  }
  if ($currentTarget -ne $versionDir) {
    if ($currentTarget -and (Test-Path -LiteralPath $currentTarget)) { Set-Junction (Join-Path $NbfInstallDir 'previous') $currentTarget }
    else { Remove-Junction (Join-Path $NbfInstallDir 'previous') }
    Set-Junction $current $versionDir
    Get-ChildItem -LiteralPath (Join-Path $NbfInstallDir 'versions') -Directory |
      Where-Object { $_.FullName -ne $versionDir -and $_.FullName -ne $currentTarget } |
      Remove-Item -Recurse -Force
  }
  # An upgrade pending from before no longer applies to the version installed here.
  Remove-Item -LiteralPath (Join-Path $NbfInstallDir 'upgrade.json') -Force -ErrorAction SilentlyContinue
  [IO.File]::WriteAllText($marker, "$NbfArtifactSha256`n")
}

function Open-Firewall {
  $ports = @($NbfNotebookPort)
  if ($NbfPublicPort) { $ports += $NbfPublicPort }
  # The agent answers the ACME CA's challenge on this port itself.
  if ($NbfAcmeChallengePort) { $ports += $NbfAcmeChallengePort }
  Get-NetFirewallRule -Name 'nbfleet-notebook' -ErrorAction SilentlyContinue | Remove-NetFirewallRule
  New-NetFirewallRule -Name 'nbfleet-notebook' -DisplayName 'nbfleet notebook server' -Direction Inbound -Protocol TCP -LocalPort $ports -Action Allow | Out-Null
  Say "Windows Firewall admits TCP $($ports -join ', ')"
  if ($NbfPublicPort) {
    & netsh.exe interface portproxy delete v4tov4 listenport=$NbfPublicPort listenaddress=0.0.0.0 2>$null | Out-Null
    & netsh.exe interface portproxy add v4tov4 listenport=$NbfPublicPort listenaddress=0.0.0.0 connectport=$NbfNotebookPort connectaddress=127.0.0.1 | Out-Null
    if ($LASTEXITCODE -ne 0) { Fail "netsh could not forward port $NbfPublicPort to $NbfNotebookPort" }
    Say "public port $NbfPublicPort forwards to the notebook port $NbfNotebookPort"
  }
}

function Register-Agent([string]$Node) {
  $launcher = Join-Path $NbfInstallDir 'run-agent.ps1'
  [IO.File]::WriteAllText($launcher, $NbfLauncher.Replace('@NODE@', $Node.Replace("'", "''")))
  $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $NbfTaskArguments -WorkingDirectory $NbfInstallDir
  $trigger = New-ScheduledTaskTrigger -AtStartup
  $settings = New-ScheduledTaskSettingsSet -RestartCount 9999 -RestartInterval (New-TimeSpan -Minutes 1) -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
  $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
  Stop-ScheduledTask -TaskName 'nbfleet-agent' -ErrorAction SilentlyContinue
  Register-ScheduledTask -TaskName 'nbfleet-agent' -Action $action -Trigger $trigger -Settings $settings -Principal $principal -Force | Out-Null
  Start-ScheduledTask -TaskName 'nbfleet-agent'
  Say 'the agent runs as the scheduled task nbfleet-agent (SYSTEM, at startup, restarted when it stops)'
}

Say "bootstrap for controller $NbfControllerUrls"
$NbfWork = Join-Path ([IO.Path]::GetTempPath()) ("nbfleet-bootstrap-" + [Guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Force -Path $NbfWork, $NbfInstallDir | Out-Null
try {
  $python = Install-Python
  Install-Jupyter $python
  $node = Install-Node
  Install-Artifact
  Write-Secret (Join-Path $NbfInstallDir 'bootstrap-token') $NbfBootstrapToken
  # The agent applies it at its first start only; later changes come from commands.
  if ($NbfPasswordHash) { Write-Secret (Join-Path $NbfInstallDir 'password-hash') $NbfPasswordHash }
  if ($NbfControllerCaPem) { [IO.File]::WriteAllText((Join-Path $NbfInstallDir 'controller-ca.pem'), $NbfControllerCaPem) }
  # Public: the agent trusts the ACME server's own TLS by it (a private CA).
  if ($NbfAcmeCaPem) { [IO.File]::WriteAllText((Join-Path $NbfInstallDir 'acme-ca.pem'), $NbfAcmeCaPem) }
  # Public (readable by everyone): the agent checks upgrade artifacts' signatures with it.
  if ($NbfReleaseKeyPem) { [IO.File]::WriteAllText((Join-Path $NbfInstallDir 'release-key.pub'), $NbfReleaseKeyPem) }
  Open-Firewall
  Register-Agent $node
  Say 'done'
} finally {
  Remove-Item -LiteralPath $NbfWork -Recurse -Force -ErrorAction SilentlyContinue
}
