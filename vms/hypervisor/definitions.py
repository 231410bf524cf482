"""The XML documents the adapter hands libvirt, built with ElementTree from typed specs: a
guest's domain, the guests' network and the filter on every guest's network card."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from vms.hypervisor.specs import (
    DISK_TARGET,
    METADATA_NS,
    METADATA_PREFIX,
    DomainSpec,
    NetworkSpec,
)

# What a guest may never reach through its gateway, besides the host's own addresses: loopback,
# "this network", link-local (cloud metadata), the private, shared (CGNAT) and benchmark ranges,
# multicast and the reserved block. The guest's own subnet is in a private range, so other guests
# are refused twice: at the bridge (isolated ports) and here.
BLOCKED_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)


DNSMASQ_NS = "http://libvirt.org/schemas/network/dnsmasq/1.0"


def network_xml(spec: NetworkSpec) -> str:
    root = ET.Element("network")
    ET.SubElement(root, "name").text = spec.name
    if spec.internet:
        ET.SubElement(root, "forward", mode="nat")
    ET.SubElement(root, "bridge", stp="off", delay="0")
    # No guest talks to another at the bridge, whatever the filter says.
    ET.SubElement(root, "port", isolated="yes")
    ip = ET.SubElement(root, "ip", address=spec.gateway, netmask=spec.netmask)
    dhcp = ET.SubElement(ip, "dhcp")
    ET.SubElement(dhcp, "range", start=spec.dhcp_start, end=spec.dhcp_end)
    # DHCP answers only the MACs it has a reservation for (`network_reserve`): a guest that asks
    # before its reservation reached dnsmasq asks again, rather than taking an address its
    # filter will not let it send from.
    ET.register_namespace("dnsmasq", DNSMASQ_NS)
    options = ET.SubElement(root, f"{{{DNSMASQ_NS}}}options")
    ET.SubElement(options, f"{{{DNSMASQ_NS}}}option", value="dhcp-ignore=tag:!known")
    return ET.tostring(root, encoding="unicode")


def guest_filter_xml(spec: NetworkSpec, host_addresses: list[str], uuid_: str | None) -> str:
    """The nwfilter on every guest interface: libvirt's clean-traffic (no MAC, IP or ARP spoofing,
    nothing but IPv4 and ARP), then what a guest may start: DHCP, and DNS on the gateway; no new
    connection to the gateway otherwise, to the host's other addresses or to the blocked ranges.
    Replies are not touched, so the host (and ports it publishes) still reach the guest. libvirt
    applies the rules to what the guest sends to the host as well as to what the host forwards."""
    root = ET.Element("filter", name=spec.filter_name, chain="root")
    if uuid_:
        ET.SubElement(root, "uuid").text = uuid_
    ET.SubElement(root, "filterref", filter="clean-traffic")

    def rule(action: str, priority: int, protocol: str, **attrs: str) -> None:
        el = ET.SubElement(root, "rule", action=action, direction="out", priority=str(priority))
        ET.SubElement(el, protocol, attrs)

    rule("accept", 100, "udp", srcportstart="68", dstportstart="67")
    rule("accept", 110, "udp", dstipaddr=spec.gateway, dstportstart="53")
    rule("accept", 120, "tcp", dstipaddr=spec.gateway, dstportstart="53")
    new = {"state": "NEW,INVALID"}
    rule("drop", 200, "all", dstipaddr=spec.gateway, **new)
    for address in host_addresses:
        rule("drop", 210, "all", dstipaddr=address, **new)
    for block in BLOCKED_RANGES:
        address, bits = block.split("/")
        rule("drop", 220, "all", dstipaddr=address, dstipmask=bits, **new)
    return ET.tostring(root, encoding="unicode")


def canonical_xml(xml: str) -> str:
    """A filter's XML in one spelling (libvirt writes it back with other quotes and spaces)."""
    root = ET.fromstring(xml)
    for el in root.iter():
        el.text = (el.text or "").strip() or None
        el.tail = None
    return ET.tostring(root, encoding="unicode")


# Where a guest finds what the service hands it: /sys/firmware/qemu_fw_cfg/by_name/opt/<this>/.
FIRMWARE_CONFIG_PREFIX = "org.koding-snapshots"


def domain_xml(spec: DomainSpec) -> str:
    """The libvirt definition of a guest: direct kernel boot, one virtio disk, a serial shell."""
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    root = ET.Element("domain", type=spec.domain_type)
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "uuid").text = str(spec.uuid)
    metadata = ET.SubElement(root, "metadata")
    ET.SubElement(metadata, f"{{{METADATA_NS}}}vm", {k: str(v) for k, v in spec.metadata.items()})
    ET.SubElement(root, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(root, "vcpu").text = str(spec.vcpus)
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = spec.kernel_path
    ET.SubElement(os_el, "initrd").text = spec.initrd_path
    ET.SubElement(os_el, "cmdline").text = spec.cmdline
    if spec.firmware_config:
        sysinfo = ET.SubElement(root, "sysinfo", type="fwcfg")
        for name, value in sorted(spec.firmware_config.items()):
            ET.SubElement(
                sysinfo, "entry", name=f"opt/{FIRMWARE_CONFIG_PREFIX}/{name}"
            ).text = value
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(root, "clock", offset="utc")
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    ET.SubElement(disk, "source", file=spec.disk_path)
    ET.SubElement(disk, "target", dev=DISK_TARGET, bus="virtio")
    if spec.network:
        nic = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(nic, "source", network=spec.network)
        ET.SubElement(nic, "mac", address=spec.mac)
        ET.SubElement(nic, "model", type="virtio")
        if spec.network_filter:
            ref = ET.SubElement(nic, "filterref", filter=spec.network_filter)
            # The one address the guest may send from: no learning, so nothing to fool.
            ET.SubElement(ref, "parameter", name="IP", value=str(spec.ip_address))
    else:
        # A host without a guests' network still gives the guest its network card (a memory
        # state saved elsewhere resumes only on the same devices), with the cable pulled: QEMU
        # passes nothing through a link that is down, so user-mode networking reaches nothing.
        nic = ET.SubElement(devices, "interface", type="user")
        ET.SubElement(nic, "mac", address=spec.mac)
        ET.SubElement(nic, "model", type="virtio")
        ET.SubElement(nic, "link", state="down")
    # Everything the guest prints is kept in a log (by virtlogd), which the console page reads,
    # whether or not anyone is attached; input is typed in through openConsole.
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=spec.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    agent = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(agent, "target", type="virtio", name="org.qemu.guest_agent.0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(root, encoding="unicode")


# --- Reading a domain's definition ---------------------------------------------------------


def _disk(root: ET.Element) -> ET.Element | None:
    for disk in root.findall("devices/disk"):
        if disk.find("target").get("dev") == DISK_TARGET:
            return disk
    return None


def disk_path_in(xml: str) -> str | None:
    """The file the guest's disk writes to, in a domain definition."""
    disk = _disk(ET.fromstring(xml))
    return None if disk is None else disk.find("source").get("file")


def disk_chain_in(xml: str) -> list[str]:
    """The files of the guest's disk in a (running) domain definition: its top layer first,
    then each one below, as QEMU reports them."""
    chain = []
    node = _disk(ET.fromstring(xml))
    while node is not None and node.find("source") is not None:
        chain.append(node.find("source").get("file"))
        node = node.find("backingStore")
    return chain


def agent_connected_in(xml: str) -> bool:
    """Whether a guest agent has opened its channel, in a running domain's definition."""
    for target in ET.fromstring(xml).findall("devices/channel/target"):
        if target.get("name") == "org.qemu.guest_agent.0":
            return target.get("state") == "connected"
    return False
