import { generateReleaseKeyPair } from "@nbfleet/shared/artifact-signature";
// The Windows bootstrap cannot run here (no Windows, no PowerShell): these tests read what it says.
import { describe, expect, it } from "vitest";
import type { WindowsBootstrapOptions } from "./options.js";
import { renderWindowsBootstrap, windowsAgentArgv, windowsCommandLineArg } from "./windows.js";

const QUOTES = "'\u2018\u2019\u201A\u201B";

/**
 * Reads the PowerShell assignment `$name = '…'` the way PowerShell does: the string ends at a
 * single quote (any of the five) not followed by another one; a doubled one stands for itself.
 */
function readAssignment(script: string, name: string): string | number {
  const start = script.indexOf(`\n$${name} = `);
  if (start < 0) throw new Error(`no $${name} assignment`);
  let i = start + `\n$${name} = `.length;
  if (!QUOTES.includes(script[i]!)) return Number(/^\d+/.exec(script.slice(i))![0]);
  let value = "";
  for (i += 1; i < script.length; i += 1) {
    const ch = script[i]!;
    if (QUOTES.includes(ch)) {
      if (QUOTES.includes(script[i + 1] ?? "")) {
        value += ch;
        i += 1;
        continue;
      }
      if (script[i + 1] !== "\n") throw new Error(`$${name}: text after the closing quote`);
      return value;
    }
    value += ch;
  }
  throw new Error(`$${name}: unterminated string`);
}

const options: WindowsBootstrapOptions = {
  controllerUrl: "https://controller.example.net",
  artifactUrl: "https://controller.example.net/v1/agent/artifact",
  artifactSha256: "c0".repeat(32),
  bootstrapToken: 'tok\'en$(Remove-Item)`n"x"',
  notebookPort: 9999,
  publicPort: 443,
  bindIp: "0.0.0.0",
  dataDir: "C:\\nb data\\it's\u2018",
  controllerFingerprint: "AB".repeat(32),
};

describe("renderWindowsBootstrap", () => {
  const script = renderWindowsBootstrap(options);

  it("carries every value as a PowerShell single-quoted string that reads back unchanged", () => {
    expect(readAssignment(script, "NbfBootstrapToken")).toBe(options.bootstrapToken);
    expect(readAssignment(script, "NbfDataDir")).toBe(options.dataDir);
    expect(readAssignment(script, "NbfArtifactSha256")).toBe(options.artifactSha256);
    expect(readAssignment(script, "NbfControllerUrl")).toBe(options.controllerUrl);
    expect(readAssignment(script, "NbfNotebookPort")).toBe(9999);
    expect(readAssignment(script, "NbfPublicPort")).toBe(443);
    // The settings sit before any function, so nothing runs before they are set.
    expect(script.indexOf("$NbfBootstrapToken = ")).toBeLessThan(script.indexOf("function "));
  });

  it("checks the artifact's SHA-256 with Get-FileHash and refuses a mismatch", () => {
    expect(script).toContain("(Get-FileHash -Algorithm SHA256 -LiteralPath $File).Hash.ToLowerInvariant()");
    expect(script).toMatch(
      /if \(\$actual -ne \$Expected\.ToLowerInvariant\(\)\) \{\s+Remove-Item[^\n]+\n\s+Fail "checksum mismatch/,
    );
    expect(script).toContain("Assert-Sha256 $archive $NbfArtifactSha256 $NbfArtifactUrl");
    // Downloaded, then checked, then unpacked — in that order.
    const download = script.indexOf("Get-File $NbfArtifactUrl $archive");
    const check = script.indexOf("Assert-Sha256 $archive");
    const unpack = script.indexOf("& tar.exe -xzf $archive");
    expect(download).toBeGreaterThan(0);
    expect(check).toBeGreaterThan(download);
    expect(unpack).toBeGreaterThan(check);
  });

  it("opens the notebook port (and the public one) in Windows Firewall", () => {
    expect(script).toContain("$ports = @($NbfNotebookPort)");
    expect(script).toContain("if ($NbfPublicPort) { $ports += $NbfPublicPort }");
    expect(script).toMatch(
      /New-NetFirewallRule -Name 'nbfleet-notebook' [^\n]*-Direction Inbound -Protocol TCP -LocalPort \$ports -Action Allow/,
    );
    expect(script).toContain("portproxy add v4tov4 listenport=$NbfPublicPort");
  });

  it("installs Python, Jupyter via pip, Node.js, and runs the agent as a SYSTEM task", () => {
    expect(script).toContain(
      "-m pip install --disable-pip-version-check --upgrade notebook matplotlib numpy ipykernel",
    );
    expect(script).toContain("Get-AuthenticodeSignature -LiteralPath $installer");
    expect(script).toContain("Assert-Sha256 $msi $sum");
    expect(script).toContain("Register-ScheduledTask -TaskName 'nbfleet-agent'");
    expect(script).toContain("New-ScheduledTaskPrincipal -UserId 'SYSTEM'");
    expect(readAssignment(script, "NbfTaskArguments")).toBe(
      "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File C:\\ProgramData\\nbfleet\\install\\run-agent.ps1",
    );
  });

  it("starts `up` with the controller, the token file and the fingerprint in the launcher", () => {
    const launcher = String(readAssignment(script, "NbfLauncher"));
    const argv = windowsAgentArgv(options);
    expect(argv.slice(0, 4)).toEqual([
      "C:\\ProgramData\\nbfleet\\install\\current\\nbfleet-agent.mjs",
      ...["up", "--data-dir", "C:\\nb data\\it's\u2018"],
    ]);
    expect(argv.join(" ")).toContain("--controller https://controller.example.net");
    expect(argv.join(" ")).toContain(
      "--bootstrap-token-file C:\\ProgramData\\nbfleet\\install\\bootstrap-token",
    );
    expect(argv.join(" ")).toContain(`--controller-fingerprint ${"AB".repeat(32)}`);
    // The launcher carries them as one Windows command line, read back unchanged by PowerShell.
    expect(readAssignment(`\n${launcher}`, "agentCommandLine")).toBe(
      argv.map(windowsCommandLineArg).join(" "),
    );
    expect(readAssignment(`\n${launcher}`, "node")).toBe("@NODE@");
    expect(readAssignment(`\n${launcher}`, "consoleLog")).toBe(
      "C:\\ProgramData\\nbfleet\\install\\agent-console.log",
    );
    expect(argv).not.toContain(options.bootstrapToken);
  });

  it("lays versions out like Linux: versions\\<version>, current and previous junctions, the release key", () => {
    const { publicKeyPem } = generateReleaseKeyPair();
    const versioned = renderWindowsBootstrap({
      ...options,
      artifactVersion: "1.4.0",
      releasePublicKeyPem: publicKeyPem,
    });
    expect(readAssignment(versioned, "NbfArtifactVersion")).toBe("1.4.0");
    expect(readAssignment(versioned, "NbfReleaseKeyPem")).toBe(publicKeyPem);
    expect(versioned).toContain(
      "$name = if ($NbfArtifactVersion) { $NbfArtifactVersion } else { $NbfArtifactSha256 }",
    );
    expect(versioned).toContain('$versionDir = Join-Path $NbfInstallDir "versions\\$name"');
    expect(versioned).toContain("Set-Junction $current $versionDir");
    expect(versioned).toContain("Set-Junction (Join-Path $NbfInstallDir 'previous') $currentTarget");
    expect(versioned).toContain("was installed before; keeping $currentTarget");
    expect(versioned).toContain(
      "[IO.File]::WriteAllText((Join-Path $NbfInstallDir 'release-key.pub'), $NbfReleaseKeyPem)",
    );
    // Junctions are removed with rmdir, never with Remove-Item -Recurse (that would empty the target).
    expect(versioned).toContain('& cmd.exe /c rmdir "$Path" | Out-Null');
    expect(versioned).not.toMatch(/Remove-Item[^\n]*\$current\b[^\n]*-Recurse/);
    const argv = windowsAgentArgv({ ...options, releasePublicKeyPem: publicKeyPem });
    expect(argv.slice(-4)).toEqual([
      ...["--install-dir", "C:\\ProgramData\\nbfleet\\install"],
      ...["--release-key-file", "C:\\ProgramData\\nbfleet\\install\\release-key.pub"],
    ]);
    expect(windowsAgentArgv(options)).not.toContain("--install-dir");
  });

  it("rolls an unconfirmed upgrade back in the launcher: 3 exits or the deadline", () => {
    const launcher = String(readAssignment(script, "NbfLauncher"));
    expect(launcher).toContain("$upgradeFile = Join-Path $install 'upgrade.json'");
    expect(launcher).toContain(
      "[DateTimeOffset]::UtcNow.ToUnixTimeSeconds() -ge [long]$Pending.deadlineUnix",
    );
    expect(launcher).toContain("Stop-Process -Id $process.Id -Force");
    expect(launcher).toContain(
      "Invoke-Rollback 'the new agent did not connect and report healthy by its deadline'",
    );
    expect(launcher).toContain("if ($exits -ge 3) {");
    expect(launcher).toContain('Invoke-Rollback "the new agent exited 3 times (last status $status)"');
    expect(launcher).toContain(
      "New-Item -ItemType Junction -Path $next -Target (Join-Path $install $pending.fromDir)",
    );
    expect(launcher).toContain(
      "Move-Item -Force -LiteralPath (Join-Path $install 'rollback.json.partial') -Destination (Join-Path $install 'rollback.json')",
    );
    expect(launcher).toMatch(
      /from = "\$\(\$pending\.from\)"\s+to = "\$\(\$pending\.to\)"\s+reason = \$Reason\s+at = /,
    );
    // A switched version (exit 75) starts at once; any other exit after a second.
    expect(launcher).toMatch(/if \(\$status -eq 75\) \{\s+\$exits = 0[^}]*continue/);
    expect(launcher).toContain("if ($pending -and $status -ne 75 -and (Test-StillPending $watched)) {");
    expect(launcher.indexOf("$status -eq 75")).toBeLessThan(launcher.indexOf("Start-Sleep -Seconds 1"));
    // The scheduled task stays the backstop that restarts the launcher itself.
    expect(script).toContain("-RestartCount 9999");
  });

  it("hands the password hash over in an ACL-restricted file, never on the command line", () => {
    const hash = "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHQ$aGFzaGhhc2g";
    const withHash = renderWindowsBootstrap({ ...options, passwordHash: hash });
    expect(readAssignment(withHash, "NbfPasswordHash")).toBe(hash);
    expect(withHash).toContain(
      "if ($NbfPasswordHash) { Write-Secret (Join-Path $NbfInstallDir 'password-hash') $NbfPasswordHash }",
    );
    const launcher = String(readAssignment(withHash, "NbfLauncher"));
    expect(launcher).toContain("--password-hash-file C:\\ProgramData\\nbfleet\\install\\password-hash");
    expect(launcher).not.toContain("argon2");
    expect(windowsAgentArgv({ ...options, passwordHash: hash }).join(" ")).not.toContain("argon2");
  });

  it("judges the controller's certificate by its pin or its CA, never by nothing", () => {
    const getFile = script.slice(
      script.indexOf("function Get-File"),
      script.indexOf("function Assert-Sha256"),
    );
    // No validation callback that accepts everything.
    expect(script).not.toMatch(/ServerCertificateValidationCallback = \{\s*\$true\s*\}/);
    expect(getFile).toContain(
      "[Net.ServicePointManager]::ServerCertificateValidationCallback = [NbfTlsTrust]::Callback",
    );
    expect(getFile).toContain(
      "[NbfTlsTrust]::PinnedSha256 = $NbfControllerFingerprint.Replace(':', '').ToUpperInvariant()",
    );
    // The pin is the SHA-256 of the served certificate's DER, compared whole.
    expect(script).toContain(
      'return BitConverter.ToString(sha.ComputeHash(served.RawData)).Replace("-", "") == PinnedSha256;',
    );
    // A CA: any error besides the chain's fails; the chain must be built up to exactly that CA.
    expect(script).toContain(
      "if ((errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None) return false;",
    );
    expect(script).toContain("own.ChainPolicy.ExtraStore.Add(Ca);");
    expect(script).toContain(
      "return root.RawData.Length == Ca.RawData.Length && root.Thumbprint == Ca.Thumbprint;",
    );
    // Everything else: Windows' own verdict.
    expect(script).toContain("return errors == SslPolicyErrors.None;");
  });

  it("refuses bad settings, naming the field", () => {
    expect(() => renderWindowsBootstrap({ ...options, dataDir: "relative\\dir" })).toThrow(/dataDir/);
    expect(() => renderWindowsBootstrap({ ...options, notebookPort: 70000 })).toThrow(/notebookPort/);
    expect(() => renderWindowsBootstrap({ ...options, dataDir: "C:\\@NODE@" })).toThrow(/@NODE@/);
  });
});

describe("renderWindowsBootstrap with a certificate from an ACME CA", () => {
  const certificate = {
    mode: "acme" as const,
    hostname: "nb2.westeurope.cloudapp.azure.com",
    directoryUrl: "https://acme.internal.example:8443/acme/directory",
    email: null,
    caPem: "-----BEGIN CERTIFICATE-----\nMIIB'x\n-----END CERTIFICATE-----\n",
    challenge: "http-01" as const,
    challengePort: 80,
  };
  const script = renderWindowsBootstrap({ ...options, certificate });

  it("gives the agent the acme flags with the CA written beside the install, and admits the challenge port", () => {
    const argv = windowsAgentArgv({ ...options, certificate });
    expect(argv.slice(argv.indexOf("--certificate-mode"))).toEqual([
      ...["--certificate-mode", "acme", "--acme-hostname", "nb2.westeurope.cloudapp.azure.com"],
      ...["--acme-directory", "https://acme.internal.example:8443/acme/directory"],
      ...["--acme-ca-file", "C:\\ProgramData\\nbfleet\\install\\acme-ca.pem"],
      ...["--acme-challenge", "http-01", "--acme-challenge-port", "80"],
    ]);
    expect(String(readAssignment(script, "NbfLauncher"))).toContain(
      "--certificate-mode acme --acme-hostname nb2.westeurope.cloudapp.azure.com",
    );
    expect(readAssignment(script, "NbfAcmeCaPem")).toBe(certificate.caPem);
    expect(readAssignment(script, "NbfAcmeChallengePort")).toBe(80);
    expect(script).toContain(
      "if ($NbfAcmeCaPem) { [IO.File]::WriteAllText((Join-Path $NbfInstallDir 'acme-ca.pem'), $NbfAcmeCaPem) }",
    );
    expect(script).toContain("if ($NbfAcmeChallengePort) { $ports += $NbfAcmeChallengePort }");
    expect(windowsAgentArgv(options).join(" ")).not.toMatch(/--acme|--certificate-mode/);
    expect(readAssignment(renderWindowsBootstrap(options), "NbfAcmeChallengePort")).toBe(0);
  });

  it("refuses hostile or conflicting certificate settings, naming the field", () => {
    expect(() =>
      renderWindowsBootstrap({ ...options, certificate: { ...certificate, hostname: "nb2.example.org`n" } }),
    ).toThrow(/certificate\.hostname/);
    expect(() =>
      renderWindowsBootstrap({ ...options, certificate: { ...certificate, email: 'a@b" & calc' } }),
    ).toThrow(/certificate\.email/);
    expect(() =>
      renderWindowsBootstrap({ ...options, certificate: { ...certificate, challengePort: 443 } }),
    ).toThrow(/certificate\.challengePort: 443 is redirected to the notebook \(publicPort\)/);
  });
});

describe("windowsCommandLineArg", () => {
  it("quotes as CommandLineToArgvW reads it", () => {
    expect(windowsCommandLineArg("C:\\plain\\path")).toBe("C:\\plain\\path");
    expect(windowsCommandLineArg("C:\\Program Files\\x")).toBe('"C:\\Program Files\\x"');
    expect(windowsCommandLineArg('say "hi"')).toBe('"say \\"hi\\""');
    expect(windowsCommandLineArg('a\\"b')).toBe('"a\\\\\\"b"');
    expect(windowsCommandLineArg("C:\\dir with space\\")).toBe('"C:\\dir with space\\\\"');
    expect(windowsCommandLineArg("")).toBe('""');
  });
});
