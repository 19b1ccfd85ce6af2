/**
 * Microsoft.Compute: virtual machines (OS disk made from the image, NICs by reference, power
 * actions, instance view with the power state), their managed OS disks and VM extensions. A VM
 * that finishes provisioning boots its guest: the guest layer runs what the customData says.
 */
import { randomUUID } from "node:crypto";
import { ArmError, conflict, invalidParameter, operationNotAllowed } from "../arm/errors.js";
import { resourceId, sameId } from "../arm/paths.js";
import type { StoredResource } from "../arm/store.js";
import type { GuestVm } from "../guest/guests.js";
import {
  type Json,
  array,
  isObject,
  nameRule,
  namesOf,
  object,
  oneOf,
  optionalObject,
  optionalString,
  reference,
  string,
  tags,
} from "./body.js";
import { NIC, PUBLIC_IP, ipConfigurations, nicOwner } from "./network.js";
import type { Action, EmulatorCore, PutInput, TypeHandler } from "./types.js";

export const VM = "Microsoft.Compute/virtualMachines";
export const DISK = "Microsoft.Compute/disks";
export const EXTENSION = "Microsoft.Compute/virtualMachines/extensions";

/** Azure: "The maximum length of the binary array is 65535 bytes" (87380 base64 characters). */
const CUSTOM_DATA_MAX_BYTES = 65535;
const RESERVED_USERS = new Set(["admin", "administrator", "root", "guest", "user", "test", "sys", "support"]);

export type PowerState = "starting" | "running" | "stopping" | "stopped" | "deallocating" | "deallocated";

export const powerState = (vm: StoredResource): PowerState =>
  (vm.hidden.powerState as PowerState | undefined) ?? "starting";

function osTypeOf(storage: Json): "Linux" | "Windows" {
  const osDisk = isObject(storage.osDisk) ? storage.osDisk : {};
  if (typeof osDisk.osType === "string") return /windows/i.test(osDisk.osType) ? "Windows" : "Linux";
  const image = isObject(storage.imageReference) ? storage.imageReference : {};
  return /windows/i.test(`${image.publisher ?? ""} ${image.offer ?? ""}`) ? "Windows" : "Linux";
}

function checkComputerName(name: string, os: "Linux" | "Windows"): void {
  const max = os === "Windows" ? 15 : 64;
  const ok =
    name.length <= max &&
    /^[A-Za-z0-9][A-Za-z0-9-]*$/.test(name) &&
    !name.endsWith("-") &&
    !(os === "Windows" && /^\d+$/.test(name));
  if (!ok) {
    throw invalidParameter(
      `Computer name '${name}' is invalid: ${os} computer names are 1-${max} letters, digits and hyphens, not ending with a hyphen${os === "Windows" ? " and not only digits" : ""}.`,
      "computerName",
    );
  }
}

function checkCustomData(value: string): void {
  const clean = /^[A-Za-z0-9+/]*={0,2}$/.test(value) && value.length % 4 === 0;
  if (!clean) throw invalidParameter("Custom data in OSProfile must be in Base64 encoding.", "customData");
  if (Buffer.from(value, "base64").length > CUSTOM_DATA_MAX_BYTES) {
    throw invalidParameter(
      `Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters (${CUSTOM_DATA_MAX_BYTES} bytes decoded); got ${value.length} characters.`,
      "customData",
    );
  }
}

function checkWindowsPassword(password: string): void {
  const classes = [/[a-z]/, /[A-Z]/, /\d/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  if (password.length < 12 || password.length > 123 || classes < 3) {
    throw invalidParameter(
      "The supplied password must be between 12-123 characters long and must satisfy at least 3 of password complexity requirements from the following: 1) Contains an uppercase character 2) Contains a lowercase character 3) Contains a numeric digit 4) Contains a special character.",
      "adminPassword",
    );
  }
}

function osProfileOf(input: PutInput, os: "Linux" | "Windows"): { shown: Json; customData: string | null } {
  const profile = object(
    input.body.properties && (input.body.properties as Json).osProfile,
    "properties.osProfile",
  );
  const computerName = optionalString(profile.computerName, "osProfile.computerName") ?? input.name;
  checkComputerName(computerName, os);
  const adminUsername = string(profile.adminUsername, "osProfile.adminUsername");
  if (
    RESERVED_USERS.has(adminUsername.toLowerCase()) ||
    !/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(adminUsername)
  ) {
    throw invalidParameter(
      `The Admin Username specified is not allowed: '${adminUsername}'.`,
      "adminUsername",
    );
  }
  const password = optionalString(profile.adminPassword, "osProfile.adminPassword");
  const customData = optionalString(profile.customData, "osProfile.customData") ?? null;
  if (customData !== null) checkCustomData(customData);
  const shown: Json = { computerName, adminUsername };
  if (os === "Windows") {
    if (password === undefined)
      throw invalidParameter("Required parameter 'adminPassword' is missing (null).", "adminPassword");
    checkWindowsPassword(password);
    shown.windowsConfiguration = profile.windowsConfiguration ?? {
      provisionVMAgent: true,
      enableAutomaticUpdates: true,
    };
  } else {
    const linux = optionalObject(profile.linuxConfiguration, "osProfile.linuxConfiguration") ?? {};
    const keys = array(
      optionalObject(linux.ssh, "linuxConfiguration.ssh")?.publicKeys,
      "linuxConfiguration.ssh.publicKeys",
    );
    for (const [i, key] of keys.entries()) {
      const data = string(
        object(key, `publicKeys[${i}]`).keyData,
        `linuxConfiguration.ssh.publicKeys[${i}].keyData`,
      );
      if (!/^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/.test(data.trim())) {
        throw new ArmError(
          400,
          "InvalidParameter",
          "The value of parameter linuxConfiguration.ssh.publicKeys.keyData is invalid.",
          "keyData",
        );
      }
    }
    if (linux.disablePasswordAuthentication === true && keys.length === 0) {
      throw invalidParameter(
        "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
        "linuxConfiguration",
      );
    }
    if (linux.disablePasswordAuthentication !== true && password === undefined) {
      throw invalidParameter("Required parameter 'adminPassword' is missing (null).", "adminPassword");
    }
    shown.linuxConfiguration = {
      disablePasswordAuthentication: linux.disablePasswordAuthentication === true,
      ...(keys.length ? { ssh: { publicKeys: keys } } : {}),
      provisionVMAgent: true,
    };
  }
  return { shown, customData };
}

function vmBuild(input: PutInput) {
  const { core } = input;
  const location = string(input.body.location, "location");
  const properties = object(input.body.properties, "properties");
  const hardware = object(properties.hardwareProfile, "properties.hardwareProfile");
  const vmSize = string(hardware.vmSize, "properties.hardwareProfile.vmSize");
  if (!/^(Standard|Basic)_[A-Za-z0-9_]+$/.test(vmSize)) {
    throw invalidParameter(`The value ${vmSize} provided for the VM size is not valid.`, "vmSize");
  }
  const storage = object(properties.storageProfile, "properties.storageProfile");
  const osDisk = optionalObject(storage.osDisk, "storageProfile.osDisk") ?? {};
  const createOption = oneOf(
    osDisk.createOption,
    "storageProfile.osDisk.createOption",
    ["FromImage", "Attach", "Empty"] as const,
    "FromImage",
  );
  if (createOption !== "FromImage") {
    throw invalidParameter(
      "The emulator creates OS disks from images only (createOption FromImage).",
      "createOption",
    );
  }
  const image = object(storage.imageReference, "properties.storageProfile.imageReference");
  for (const key of ["publisher", "offer", "sku"] as const)
    string(image[key], `storageProfile.imageReference.${key}`);
  const os = osTypeOf(storage);
  const { shown: osProfile, customData } = osProfileOf(input, os);

  const network = object(properties.networkProfile, "properties.networkProfile");
  const nics = array(network.networkInterfaces, "properties.networkProfile.networkInterfaces");
  if (nics.length === 0) {
    throw invalidParameter(
      "At least one network interface is required in networkProfile.networkInterfaces.",
      "networkInterfaces",
    );
  }
  const nicRefs = nics.map((raw, i) => {
    const field = `properties.networkProfile.networkInterfaces[${i}]`;
    const nic = reference(core, raw, field, NIC, input.id);
    if (nic.location.toLowerCase() !== location.toLowerCase()) {
      throw invalidParameter(
        `Network interface ${nic.id} is in ${nic.location}; the VM is in ${location}.`,
        "location",
      );
    }
    const owner = nicOwner(core, nic);
    if (owner && !sameId(owner.id, input.id)) {
      throw new ArmError(
        409,
        "Conflict",
        `Network interface ${nic.id} is already attached to virtual machine ${owner.id}.`,
      );
    }
    const nicProps = optionalObject((raw as Json).properties, `${field}.properties`) ?? {};
    return {
      id: nic.id,
      properties: {
        primary: nicProps.primary ?? i === 0,
        deleteOption: oneOf(
          nicProps.deleteOption,
          `${field}.properties.deleteOption`,
          ["Delete", "Detach"] as const,
          "Detach",
        ),
      },
    };
  });

  const existingDisk = input.existing
    ? ((input.existing.properties.storageProfile as Json).osDisk as Json)
    : undefined;
  const diskName =
    (existingDisk?.name as string | undefined) ??
    optionalString(osDisk.name, "storageProfile.osDisk.name") ??
    `${input.name}_OsDisk_1_${randomUUID().replace(/-/g, "")}`;
  const diskId = resourceId(input.group.subscription, input.group.name, DISK, diskName);
  if (!input.existing && core.store.get(diskId)) {
    throw conflict(`Disk ${diskId} already exists; choose another OS disk name.`);
  }
  const managedDisk = optionalObject(osDisk.managedDisk, "storageProfile.osDisk.managedDisk") ?? {};
  return {
    id: input.id,
    name: input.name,
    type: VM,
    subscription: input.group.subscription,
    resourceGroup: input.group.name,
    location,
    tags: tags(input.body.tags),
    extra: {},
    hidden: { customData, osType: os, powerState: input.existing ? powerState(input.existing) : "starting" },
    properties: {
      vmId: (input.existing?.properties.vmId as string | undefined) ?? randomUUID(),
      hardwareProfile: { vmSize },
      storageProfile: {
        imageReference: { ...image, version: image.version ?? "latest" },
        osDisk: {
          osType: os,
          name: diskName,
          createOption,
          caching: osDisk.caching ?? "ReadWrite",
          managedDisk: { id: diskId, storageAccountType: managedDisk.storageAccountType ?? "Standard_LRS" },
          deleteOption: oneOf(
            osDisk.deleteOption,
            "storageProfile.osDisk.deleteOption",
            ["Delete", "Detach"] as const,
            "Detach",
          ),
          diskSizeGB: osDisk.diskSizeGB ?? 30,
        },
        dataDisks: [],
      },
      osProfile,
      networkProfile: { networkInterfaces: nicRefs },
      timeCreated: (input.existing?.properties.timeCreated as string | undefined) ?? new Date().toISOString(),
    },
  };
}

function guestOf(vm: StoredResource): GuestVm {
  return {
    id: vm.id,
    name: vm.name,
    osType: (vm.hidden.osType as "Linux" | "Windows") ?? "Linux",
    customData: (vm.hidden.customData as string | null) ?? null,
  };
}

function notDeleting(vm: StoredResource, action: string): void {
  if (vm.deleting)
    throw operationNotAllowed(
      `Operation '${action}' is not allowed on VM '${vm.name}' since the VM is marked for deletion.`,
    );
  if (vm.properties.provisioningState === "Creating") {
    throw operationNotAllowed(
      `Operation '${action}' is not allowed on VM '${vm.name}' while it is being created.`,
    );
  }
}

function power(
  from: PowerState[] | null,
  during: PowerState,
  after: PowerState,
  work: (core: EmulatorCore, vm: StoredResource) => Promise<void> | void,
  name: string,
): Action {
  return {
    begin(_core, vm) {
      notDeleting(vm, name);
      if (from && !from.includes(powerState(vm))) {
        throw operationNotAllowed(
          `Operation '${name}' is not allowed since the VM '${vm.name}' is ${powerState(vm)}.`,
        );
      }
      vm.hidden.powerState = during;
    },
    async run(core, vm) {
      await work(core, vm);
      vm.hidden.powerState = after;
    },
  };
}

export const virtualMachines: TypeHandler = {
  type: VM,
  pendingState: "Creating",
  nameProblem: namesOf(
    "virtual machine",
    nameRule(
      /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$/,
      "1-64 letters, digits, underscores, periods and hyphens, not starting with an underscore and not ending with a period or hyphen",
    ),
  ),
  putDuration: (core) => core.durations.compute,
  build: vmBuild,
  accepted(core, vm, created) {
    if (!created) return;
    const osDisk = (vm.properties.storageProfile as Json).osDisk as Json;
    const diskId = (osDisk.managedDisk as Json).id as string;
    core.store.put({
      id: diskId,
      name: osDisk.name as string,
      type: DISK,
      subscription: vm.subscription,
      resourceGroup: vm.resourceGroup,
      location: vm.location,
      tags: {},
      extra: {
        sku: { name: (osDisk.managedDisk as Json).storageAccountType, tier: "Standard" },
        managedBy: vm.id,
      },
      hidden: {},
      properties: {
        osType: osDisk.osType,
        creationData: { createOption: "FromImage", imageReference: { id: "emulated" } },
        diskSizeGB: osDisk.diskSizeGB,
        diskState: "Attached",
        provisioningState: "Updating",
        timeCreated: new Date().toISOString(),
      },
      busy: null,
      deleting: false,
    });
  },
  provision(core, vm, created) {
    const osDisk = (vm.properties.storageProfile as Json).osDisk as Json;
    const disk = core.store.get((osDisk.managedDisk as Json).id as string);
    if (disk) disk.properties.provisioningState = "Succeeded";
    if (!created) return;
    vm.hidden.powerState = "running";
    // The VM is provisioned; its guest boots in the background, as cloud-init runs after Azure reports success.
    void core.guests.boot(guestOf(vm));
  },
  async remove(core, vm) {
    await core.guests.destroy(vm.id);
    for (const extension of core.store.list({ type: EXTENSION }).filter((e) => sameId(e.parentId, vm.id))) {
      core.store.delete(extension.id);
    }
    const osDisk = (vm.properties.storageProfile as Json).osDisk as Json;
    const disk = core.store.get((osDisk.managedDisk as Json).id as string);
    if (disk) {
      if (osDisk.deleteOption === "Delete") core.store.delete(disk.id);
      else {
        disk.extra.managedBy = undefined;
        disk.properties.diskState = "Unattached";
      }
    }
    const refs = (vm.properties.networkProfile as Json).networkInterfaces as Array<{
      id: string;
      properties: Json;
    }>;
    // Detach first: once the VM is gone nothing holds the NICs, and deleting them is allowed.
    vm.properties.networkProfile = { networkInterfaces: [] };
    for (const ref of refs) {
      const nic = core.store.get(ref.id);
      if (!nic || ref.properties.deleteOption !== "Delete") continue;
      const ips = ipConfigurations(nic)
        .map((config) => (config.properties.publicIPAddress as Json | undefined)?.id as string | undefined)
        .flatMap((id) => (id ? [core.store.get(id)] : []))
        .filter((ip): ip is StoredResource => ip !== undefined && ip.type === PUBLIC_IP);
      core.store.delete(nic.id);
      for (const ip of ips) if (ip.properties.deleteOption === "Delete") core.store.delete(ip.id);
    }
  },
  render(_core, vm, expand) {
    return expand?.toLowerCase().includes("instanceview") ? { instanceView: instanceView(vm) } : {};
  },
  actions: {
    start: power(null, "starting", "running", (core, vm) => void core.guests.boot(guestOf(vm)), "start"),
    deallocate: power(
      null,
      "deallocating",
      "deallocated",
      (core, vm) => core.guests.halt(vm.id),
      "deallocate",
    ),
    powerOff: power(null, "stopping", "stopped", (core, vm) => core.guests.halt(vm.id), "powerOff"),
    restart: power(
      ["running", "starting"],
      "starting",
      "running",
      async (core, vm) => {
        await core.guests.halt(vm.id);
        void core.guests.boot(guestOf(vm));
      },
      "restart",
    ),
  },
  children: {} as Record<string, TypeHandler>,
};

export function instanceView(vm: StoredResource): Json {
  const state = powerState(vm);
  const provisioning = String(vm.properties.provisioningState ?? "Succeeded");
  const display: Record<PowerState, string> = {
    starting: "VM starting",
    running: "VM running",
    stopping: "VM stopping",
    stopped: "VM stopped",
    deallocating: "VM deallocating",
    deallocated: "VM deallocated",
  };
  return {
    computerName: (vm.properties.osProfile as Json | undefined)?.computerName,
    osName: vm.hidden.osType === "Windows" ? "Windows Server 2022 Datacenter" : "ubuntu",
    statuses: [
      {
        code: `ProvisioningState/${provisioning.toLowerCase()}`,
        level: provisioning === "Failed" ? "Error" : "Info",
        displayStatus: `Provisioning ${provisioning.toLowerCase()}`,
        time: new Date().toISOString(),
      },
      ...(provisioning === "Failed"
        ? []
        : [{ code: `PowerState/${state}`, level: "Info", displayStatus: display[state] }]),
    ],
  };
}

/** Names of 1 to `max` letters, digits, underscores, periods and hyphens, in any order. */
function plainNameRule(max: number): (name: string) => string | null {
  return nameRule(
    new RegExp(`^[A-Za-z0-9_.-]{1,${max}}$`),
    `1-${max} letters, digits, underscores, periods and hyphens`,
  );
}

export const disks: TypeHandler = {
  type: DISK,
  pendingState: "Updating",
  nameProblem: namesOf("disk", plainNameRule(80)),
  putDuration: (core) => core.durations.network,
  build() {
    throw new ArmError(
      400,
      "OperationNotSupported",
      "The emulator makes managed disks only as the OS disks of virtual machines.",
    );
  },
  inUse(core, disk) {
    const owner = disk.extra.managedBy as string | undefined;
    const vm = owner ? core.store.get(owner) : undefined;
    return vm && !vm.deleting
      ? new ArmError(409, "OperationNotAllowed", `Disk ${disk.name} is attached to VM ${vm.id}.`)
      : null;
  },
};

export const extensions: TypeHandler = {
  type: EXTENSION,
  pendingState: "Creating",
  nameProblem: namesOf("extension", plainNameRule(64)),
  putDuration: (core) => core.durations.network,
  build(input) {
    const parent = input.parent;
    if (!parent) throw invalidParameter("An extension belongs to a virtual machine.", "id");
    if (parent.deleting) throw operationNotAllowed(`VM ${parent.name} is being deleted.`);
    const properties = object(input.body.properties, "properties");
    const fields = ["publisher", "type", "typeHandlerVersion"] as const;
    for (const key of fields) string(properties[key], `properties.${key}`);
    const { protectedSettings: _secret, ...shown } = properties;
    return {
      id: input.id,
      name: input.name,
      type: EXTENSION,
      subscription: input.group.subscription,
      resourceGroup: input.group.name,
      location: string(input.body.location ?? parent.location, "location"),
      tags: tags(input.body.tags),
      extra: {},
      hidden: { protectedSettings: properties.protectedSettings ?? null },
      properties: shown,
      parentId: parent.id,
    };
  },
};

virtualMachines.children = { extensions };
