import { describe, expect, it } from "vitest";
import { detectPlatform, parseOsRelease } from "./os-release.js";

const DEBIAN_12 = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`;

const UBUNTU_2404 = `PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
`;

const OPENSUSE_LEAP = `NAME="openSUSE Leap"
VERSION="15.6"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.6"
PRETTY_NAME="openSUSE Leap 15.6"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:opensuse:leap:15.6"
BUG_REPORT_URL="https://bugs.opensuse.org"
HOME_URL="https://www.opensuse.org/"
DOCUMENTATION_URL="https://en.opensuse.org/Portal:Leap"
LOGO="distributor-logo-Leap"
`;

const FEDORA_40 = `NAME="Fedora Linux"
VERSION="40 (Cloud Edition)"
ID=fedora
VERSION_ID=40
VERSION_CODENAME=""
PLATFORM_ID="platform:f40"
PRETTY_NAME="Fedora Linux 40 (Cloud Edition)"
ANSI_COLOR="0;38;2;60;110;180"
LOGO=fedora-logo-icon
CPE_NAME="cpe:/o:fedoraproject:fedora:40"
DEFAULT_HOSTNAME="fedora"
HOME_URL="https://fedoraproject.org/"
VARIANT="Cloud Edition"
VARIANT_ID=cloud
`;

const SLES = `NAME="SLES"
VERSION="15-SP5"
ID="sles"
ID_LIKE="suse"
`;

const MINT = `NAME="Linux Mint"
ID=linuxmint
ID_LIKE="ubuntu debian"
`;

describe("parseOsRelease", () => {
  it("reads Debian 12", () => {
    const fields = parseOsRelease(DEBIAN_12);
    expect(fields.ID).toBe("debian");
    expect(fields.VERSION_ID).toBe("12");
    expect(fields.PRETTY_NAME).toBe("Debian GNU/Linux 12 (bookworm)");
    expect(fields.ID_LIKE).toBeUndefined();
  });

  it("reads Ubuntu 24.04", () => {
    const fields = parseOsRelease(UBUNTU_2404);
    expect(fields).toMatchObject({ ID: "ubuntu", ID_LIKE: "debian", VERSION_ID: "24.04" });
  });

  it("reads openSUSE Leap with quoted ids", () => {
    expect(parseOsRelease(OPENSUSE_LEAP)).toMatchObject({ ID: "opensuse-leap", ID_LIKE: "suse opensuse" });
  });

  it("reads Fedora with an empty quoted value", () => {
    expect(parseOsRelease(FEDORA_40)).toMatchObject({ ID: "fedora", VERSION_ID: "40", VERSION_CODENAME: "" });
  });

  it("skips comments and blank lines, unescapes double quotes, keeps single quotes literal", () => {
    const fields = parseOsRelease(
      '# a comment\n\nNAME="A \\"quoted\\" \\$name"\nOTHER=\'x\\y\'\r\nnot a line\n',
    );
    expect(fields).toEqual({ NAME: 'A "quoted" $name', OTHER: "x\\y" });
  });
});

describe("detectPlatform", () => {
  it.each([
    [DEBIAN_12, "debian"],
    [UBUNTU_2404, "debian"],
    [MINT, "debian"],
    [OPENSUSE_LEAP, "opensuse"],
    ['ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n', "opensuse"],
    [SLES, "opensuse"],
    [FEDORA_40, "pip"],
    ["", "pip"],
  ])("maps a linux os-release to its plan (%#)", (text, expected) => {
    expect(detectPlatform({ osReleaseText: text, platform: "linux" })).toBe(expected);
  });

  it("uses pip without an os-release file and windows on win32", () => {
    expect(detectPlatform({ osReleaseText: null, platform: "linux" })).toBe("pip");
    expect(detectPlatform({ osReleaseText: null, platform: "darwin" })).toBe("pip");
    expect(detectPlatform({ osReleaseText: DEBIAN_12, platform: "win32" })).toBe("windows");
  });
});
