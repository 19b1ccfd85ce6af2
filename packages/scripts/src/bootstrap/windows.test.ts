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
    expect(launcher).toContain("& '@NODE@' 'C:\\ProgramData\\nbfleet\\install\\versions\\" + "c0".repeat(32));
    expect(launcher).toContain("'up' '--data-dir' 'C:\\nb data\\it''s\u2018\u2018' '--port' '9999'");
    expect(launcher).toContain("'--controller' 'https://controller.example.net'");
    expect(launcher).toContain(
      "'--bootstrap-token-file' 'C:\\ProgramData\\nbfleet\\install\\bootstrap-token'",
    );
    expect(launcher).toContain(`'--controller-fingerprint' '${"AB".repeat(32)}'`);
    expect(launcher).toContain(
      "Out-File -LiteralPath 'C:\\ProgramData\\nbfleet\\install\\agent-console.log' -Append",
    );
    expect(windowsAgentArgv(options)).not.toContain(options.bootstrapToken);
  });

  it("hands the password hash over in an ACL-restricted file, never on the command line", () => {
    const hash = "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHQ$aGFzaGhhc2g";
    const withHash = renderWindowsBootstrap({ ...options, passwordHash: hash });
    expect(readAssignment(withHash, "NbfPasswordHash")).toBe(hash);
    expect(withHash).toContain(
      "if ($NbfPasswordHash) { Write-Secret (Join-Path $NbfInstallDir 'password-hash') $NbfPasswordHash }",
    );
    const launcher = String(readAssignment(withHash, "NbfLauncher"));
    expect(launcher).toContain("'--password-hash-file' 'C:\\ProgramData\\nbfleet\\install\\password-hash'");
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
