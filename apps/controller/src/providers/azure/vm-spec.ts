/**
 * The request bodies for one machine: a Standard static public IP with a DNS label, a NIC in
 * the fleet subnet, the VM (image, size, admin login, customData, and `deleteOption: Delete`
 * on OS disk, NIC and IP so deleting the VM takes them along), and for Windows the
 * CustomScriptExtension that runs the PowerShell bootstrap carried in customData.
 */
import { generateKeyPairSync, randomInt } from "node:crypto";
import type { VirtualMachine, VirtualMachineExtension } from "@azure/arm-compute";
import type { NetworkInterface, PublicIPAddress } from "@azure/arm-network";
import type { GuestOs, VmResourceNames } from "./names.js";

export const IMAGES = {
  "ubuntu-24.04": { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "latest" },
  "ubuntu-22.04": {
    publisher: "Canonical",
    offer: "0001-com-ubuntu-server-jammy",
    sku: "22_04-lts-gen2",
    version: "latest",
  },
  "windows-2022": {
    publisher: "MicrosoftWindowsServer",
    offer: "WindowsServer",
    sku: "2022-datacenter-azure-edition",
    version: "latest",
  },
} as const;
export type ImageName = keyof typeof IMAGES;

export const osOfImage = (image: ImageName): GuestOs => (image.startsWith("windows") ? "windows" : "linux");

export function publicIpBody(
  location: string,
  names: VmResourceNames,
  tags: Record<string, string>,
): PublicIPAddress {
  return {
    location,
    tags,
    sku: { name: "Standard", tier: "Regional" },
    publicIPAllocationMethod: "Static",
    publicIPAddressVersion: "IPv4",
    dnsSettings: { domainNameLabel: names.dnsLabel },
    deleteOption: "Delete",
  };
}

export function nicBody(
  location: string,
  subnetId: string,
  publicIpId: string,
  tags: Record<string, string>,
): NetworkInterface {
  return {
    location,
    tags,
    ipConfigurations: [
      {
        name: "ipconfig1",
        subnet: { id: subnetId },
        privateIPAllocationMethod: "Dynamic",
        publicIPAddress: { id: publicIpId, deleteOption: "Delete" },
      },
    ],
  };
}

export interface VmSpec {
  location: string;
  names: VmResourceNames;
  tags: Record<string, string>;
  vmSize: string;
  image: ImageName;
  adminUsername: string;
  /** An OpenSSH public key for the admin (Linux); null = a generated key whose private half is discarded. */
  sshPublicKey: string | null;
  customDataBase64: string;
  nicId: string;
}

export function vmBody(spec: VmSpec): VirtualMachine {
  const windows = osOfImage(spec.image) === "windows";
  return {
    location: spec.location,
    tags: spec.tags,
    hardwareProfile: { vmSize: spec.vmSize },
    storageProfile: {
      imageReference: { ...IMAGES[spec.image] },
      osDisk: {
        name: spec.names.osDisk,
        createOption: "FromImage",
        caching: "ReadWrite",
        managedDisk: { storageAccountType: "StandardSSD_LRS" },
        deleteOption: "Delete",
      },
    },
    osProfile: {
      computerName: spec.names.computerName,
      adminUsername: spec.adminUsername,
      customData: spec.customDataBase64,
      ...(windows
        ? {
            // Required by Azure; never stored or shown: access is through nbfleet, not RDP.
            adminPassword: throwawayWindowsPassword(),
            windowsConfiguration: { provisionVMAgent: true, enableAutomaticUpdates: true },
          }
        : {
            linuxConfiguration: {
              disablePasswordAuthentication: true,
              ssh: {
                publicKeys: [
                  {
                    path: `/home/${spec.adminUsername}/.ssh/authorized_keys`,
                    keyData: spec.sshPublicKey ?? throwawaySshPublicKey(),
                  },
                ],
              },
            },
          }),
    },
    networkProfile: { networkInterfaces: [{ id: spec.nicId, primary: true, deleteOption: "Delete" }] },
  };
}

/** C:\AzureData\CustomData.bin is where Azure puts a Windows VM's customData: run it as the bootstrap. */
export const WINDOWS_BOOTSTRAP_COMMAND =
  'powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "' +
  "Copy-Item -LiteralPath 'C:\\AzureData\\CustomData.bin' -Destination 'C:\\AzureData\\nbfleet-bootstrap.ps1' -Force; " +
  "& 'C:\\AzureData\\nbfleet-bootstrap.ps1'; exit $LASTEXITCODE\"";

export function windowsExtensionBody(
  location: string,
  tags: Record<string, string>,
): VirtualMachineExtension {
  return {
    location,
    tags,
    publisher: "Microsoft.Compute",
    typePropertiesType: "CustomScriptExtension",
    typeHandlerVersion: "1.10",
    autoUpgradeMinorVersion: true,
    // protectedSettings are encrypted by Azure and never returned.
    protectedSettings: { commandToExecute: WINDOWS_BOOTSTRAP_COMMAND },
  };
}

let throwawayKey: string | undefined;
/**
 * "SSH-key admin login or none": Azure requires a login for a Linux VM, so "none" is an RSA key
 * whose private half is never kept (one per controller process).
 */
export function throwawaySshPublicKey(): string {
  if (!throwawayKey) {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 3072 });
    const jwk = publicKey.export({ format: "jwk" });
    const field = (bytes: Buffer) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return Buffer.concat([length, bytes]);
    };
    const mpint = (b64url: string) => {
      const bytes = Buffer.from(b64url, "base64url");
      return field(bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
    };
    const blob = Buffer.concat([field(Buffer.from("ssh-rsa")), mpint(jwk.e!), mpint(jwk.n!)]);
    throwawayKey = `ssh-rsa ${blob.toString("base64")} nbfleet-no-login`;
  }
  return throwawayKey;
}

function throwawayWindowsPassword(): string {
  const sets = ["ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!@#%^*()-_=+"];
  const all = sets.join("");
  const chars = sets.map((set) => set[randomInt(set.length)]!);
  while (chars.length < 28) chars.push(all[randomInt(all.length)]!);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join("");
}
