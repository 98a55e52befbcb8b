// SPDX-License-Identifier: GPL-2.0-or-later
/** Test domains and what the suite does with them through virsh. */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import process from "node:process";

export const PREFIX = "httpsisoboot-e2e-";

/**
 * TCG unless HTTPSISOBOOT_E2E_VIRT=kvm: KVM guests hang on this project's CI
 * machines, while EL9's qemu-kvm has no TCG, so the Vagrant host opts in to
 * KVM when it has nested virtualization.
 */
const VIRT_TYPE = process.env.HTTPSISOBOOT_E2E_VIRT === "kvm" ? "kvm" : "qemu";

export interface DomainSpec {
  name: string;
  /** The VM's UUID, which names its relay. */
  uuid: string;
  machine: "pc" | "q35";
  firmware: "bios" | "efi";
  /** The local bootable ISO, at boot order 1 before the hook runs. */
  localIso: string;
  serialLog: string;
}

/**
 * A TCG domain with a local CD-ROM at boot order 1 and a NIC at boot order 2.
 * The NIC is a UDP socket on loopback, so the guest can reach nothing else.
 */
export function domainXml(spec: DomainSpec): string {
  const efi = spec.firmware === "efi";
  const localTarget = spec.machine === "q35" ? "dev='sdc' bus='sata'" : "dev='hdc' bus='ide'";
  return `<domain type='${VIRT_TYPE}'>
  <name>${PREFIX}${spec.name}</name>
  <uuid>${spec.uuid}</uuid>
  <memory unit='MiB'>${efi ? 256 : 128}</memory>
  <vcpu>1</vcpu>
  <os${efi ? " firmware='efi'" : ""}>
    <type arch='x86_64' machine='${spec.machine}'>hvm</type>${
    efi
      ? `
    <firmware>
      <feature enabled='no' name='secure-boot'/>
      <feature enabled='no' name='enrolled-keys'/>
    </firmware>`
      : ""
  }
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${spec.localIso}'/>
      <target ${localTarget}/>
      <readonly/>
      <boot order='1'/>
    </disk>
    <interface type='udp'>
      <source address='127.0.0.1' port='9'>
        <local address='127.0.0.1' port='0'/>
      </source>
      <model type='e1000'/>
      <boot order='2'/>
    </interface>
    <serial type='file'>
      <source path='${spec.serialLog}'/>
    </serial>
    <video>
      <model type='none'/>
    </video>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

export function virsh(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `virsh create`; returns libvirt's error, or undefined when the domain started. */
export function create(path: string): string | undefined {
  const result = virsh("create", path);
  return result.status === 0 ? undefined : result.stderr.trim();
}

/** Destroys and undefines every domain this suite may have left, and its NVRAM. */
export function removeTestDomains(): void {
  const list = virsh("list", "--all", "--name").stdout.split("\n").map((line) => line.trim());
  for (const name of list.filter((name) => name.startsWith(PREFIX))) {
    virsh("destroy", name);
    virsh("undefine", "--nvram", name);
  }
  for (const name of ["q35-uefi"]) rmSync(`/var/lib/libvirt/qemu/nvram/${PREFIX}${name}_VARS.fd`, { force: true });
}

export function serialText(path: string): string {
  // deno-lint-ignore no-control-regex
  return existsSync(path) ? readFileSync(path, "latin1").replace(/\x1b\[[0-9;=?]*[A-Za-z]/g, "") : "";
}

/** Waits for `marker` on the serial log; returns the seconds it took, or undefined on timeout. */
export async function waitForMarker(path: string, markers: string[], timeoutMs: number): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const text = serialText(path);
    const found = markers.find((marker) => text.includes(marker));
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

/**
 * What the live domain says, from `virsh dumpxml`: each device's boot order,
 * and the hook's CD-ROM's target as `dev (bus)`: an https source (relay =
 * off), or the relay's NBD socket.
 */
export function liveDevices(name: string): { orders: Record<string, number>; httpsTarget?: string } {
  const xml = virsh("dumpxml", `${PREFIX}${name}`).stdout;
  const orders: Record<string, number> = {};
  let httpsTarget: string | undefined;
  for (const device of xml.match(/<(disk|interface)\b[\s\S]*?<\/\1>/g) ?? []) {
    const https = /protocol='(https|nbd)'/.test(device);
    if (https) {
      const target = /<target dev='([^']+)' bus='([^']+)'/.exec(device);
      httpsTarget = target ? `${target[1]} (${target[2]})` : undefined;
    }
    const order = /<boot order='(\d+)'/.exec(device)?.[1];
    if (!order) continue;
    orders[https ? "https-cdrom" : device.startsWith("<disk") ? "local-cdrom" : "nic"] = Number(order);
  }
  return { orders, httpsTarget };
}
