"""`FakeHypervisor`: one libvirt host kept in memory, with the interface of `Hypervisor`.

For rule tests: no libvirtd, no files, and a test can look inside (`calls`, the pools, the
domains) or make the host fail (`reachable = False`). What it promises is what `Hypervisor`
promises; `tests/hypervisor/` runs the same contract against both (the real one over libvirt's
test driver), so the two cannot drift apart. It keeps no qcow2 files: a volume is its size, its
backing path and, for console logs and uploads, its bytes.
"""

from __future__ import annotations

import copy
import os
import struct
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from vms.hypervisor.definitions import (
    agent_connected_in,
    disk_path_in,
    guest_filter_xml,
    network_xml,
)
from vms.hypervisor.errors import (
    DomainNotFound,
    HypervisorError,
    HypervisorUnavailable,
    Interrupted,
    InvalidDomainState,
    MemoryMismatch,
    PoolNotFound,
    VolumeNotFound,
)
from vms.hypervisor.specs import (
    DISK_TARGET,
    METADATA_NS,
    DomainRecord,
    NetworkSpec,
    VolumeInfo,
    uri_is_local,
)

MIB = 1024 * 1024


@dataclass
class FakeVolume:
    name: str
    capacity: int
    allocation: int = 0
    backing_path: str | None = None
    data: bytes = b""


@dataclass
class FakePool:
    path: str
    capacity: int
    volumes: dict[str, FakeVolume] = field(default_factory=dict)


@dataclass
class FakeDomain:
    xml: str
    live_xml: str | None = None  # set while it runs

    @property
    def running(self) -> bool:
        return self.live_xml is not None


@dataclass
class FakeNetwork:
    xml: str
    active: bool = True
    reservations: dict[str, str] = field(default_factory=dict)  # MAC -> address
    leases: dict[str, str] = field(default_factory=dict)  # address -> MAC


@dataclass(frozen=True)
class SavedMemory:
    domain_uuid: uuid.UUID
    disk_path: str


def _with_disk_path(xml: str, path: str) -> str:
    root = ET.fromstring(xml)
    for disk in root.findall("devices/disk"):
        if disk.find("target").get("dev") == DISK_TARGET:
            disk.find("source").set("file", path)
    return ET.tostring(root, encoding="unicode")


def _qcow2_header(head: bytes) -> tuple[int, str | None] | None:
    """(virtual size, backing file) from the first bytes of a qcow2 file; None if it is not
    one (what libvirt probes when it reads an uploaded volume)."""
    if len(head) < 32 or head[:4] != b"QFI\xfb":
        return None
    offset, length = struct.unpack(">QI", head[8:20])
    (size,) = struct.unpack(">Q", head[24:32])
    backing = head[offset : offset + length].decode(errors="replace") if offset else None
    return size, backing or None


class FakeHypervisor:
    """An in-memory libvirt host at `uri`, with `Hypervisor`'s methods and their promises."""

    def __init__(
        self,
        uri: str = "test:///default",
        *,
        memory_mib: int = 3072,
        cpus: int = 16,
        pool_capacity: int = 100 * 1024**3,
    ):
        self.uri = uri
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.default_pool_capacity = pool_capacity
        # A host that does not answer fails every call, as `connect` does for a real one.
        self.reachable = True
        # Whether a guest powers off when its power button is pressed.
        self.obeys_power_button = True
        self.calls: list[str] = []
        self.pools: dict[str, FakePool] = {}
        self.domains_by_uuid: dict[uuid.UUID, FakeDomain] = {}
        self.networks: dict[str, FakeNetwork] = {}
        self.filters: dict[str, str] = {}
        self.saved_memory: dict[str, SavedMemory] = {}
        # Each domain resumed from another's memory (`domain_fork_memory`): whose it was.
        self.forked_from: dict[uuid.UUID, uuid.UUID] = {}
        self.console_input: dict[uuid.UUID, bytes] = {}
        # What a running guest's agent answers (a `GuestInfo`), by domain.
        self.agent_answers: dict[uuid.UUID, object] = {}

    def __repr__(self) -> str:
        return f"FakeHypervisor({self.uri!r})"

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if not self.reachable:
            raise HypervisorUnavailable(
                f"libvirt at {self.uri} does not answer; the host may be down."
            )

    # --- What a test does to the host, besides calling the interface -----------------------

    def console_log(self, pool_name: str, name: str, data: bytes) -> None:
        """Append to a console log in a pool, as virtlogd does for a running guest."""
        volume = self._pool(pool_name).volumes.setdefault(name, FakeVolume(name, 0))
        volume.data += data
        volume.capacity = volume.allocation = len(volume.data)

    def volume_write(self, path: str, nbytes: int) -> None:
        """A guest writes `nbytes` into the layer at `path`: the file grows."""
        self._volume_at(path).allocation += nbytes

    def network_lease(self, name: str, *, mac: str, address: str) -> None:
        """DHCP leases `address` to `mac` on the network, as dnsmasq does when a guest asks."""
        self._network(name).leases[address] = mac.lower()

    # --- Lookups ---------------------------------------------------------------------------

    def _pool(self, name: str) -> FakePool:
        try:
            return self.pools[name]
        except KeyError:
            raise PoolNotFound(
                f"Storage pool not found: no storage pool with matching name '{name}'"
            ) from None

    def _volume(self, pool_name: str, name: str) -> FakeVolume:
        try:
            return self._pool(pool_name).volumes[name]
        except KeyError:
            raise VolumeNotFound(
                f"Storage volume not found: no storage vol with matching name '{name}'"
            ) from None

    def _volume_at(self, path: str) -> FakeVolume:
        for pool in self.pools.values():
            for volume in pool.volumes.values():
                if os.path.join(pool.path, volume.name) == path:
                    return volume
        raise VolumeNotFound(
            f"Storage volume not found: no storage vol with matching path '{path}'"
        )

    def _info(self, pool_name: str, volume: FakeVolume) -> VolumeInfo:
        return VolumeInfo(
            name=volume.name,
            path=os.path.join(self.pools[pool_name].path, volume.name),
            capacity=volume.capacity,
            allocation=volume.allocation,
            backing_path=volume.backing_path,
        )

    def _domain(self, domain_uuid: uuid.UUID) -> FakeDomain:
        try:
            return self.domains_by_uuid[uuid.UUID(str(domain_uuid))]
        except KeyError:
            raise DomainNotFound(
                f"Domain not found: no domain with matching uuid '{domain_uuid}'"
            ) from None

    def _running(self, domain_uuid: uuid.UUID) -> FakeDomain:
        dom = self._domain(domain_uuid)
        if not dom.running:
            raise InvalidDomainState("Requested operation is not valid: domain is not running")
        return dom

    def _network(self, name: str) -> FakeNetwork:
        try:
            return self.networks[name]
        except KeyError:
            raise HypervisorError(
                f"Network not found: no network with matching name '{name}'"
            ) from None

    def _add(self, pool_name: str, volume: FakeVolume) -> VolumeInfo:
        pool = self._pool(pool_name)
        if volume.name in pool.volumes:
            raise HypervisorError(f"storage volume name '{volume.name}' already in use.")
        pool.volumes[volume.name] = volume
        return self._info(pool_name, volume)

    # --- The interface of `Hypervisor` -------------------------------------------------------

    def version(self) -> str:
        self._call("version")
        return "9.0.0"

    def pool_ensure(self, name: str, path: str) -> None:
        self._call("pool_ensure")
        self.pools.setdefault(name, FakePool(path=path, capacity=self.default_pool_capacity))

    def pool_exists(self, name: str) -> bool:
        self._call("pool_exists")
        return name in self.pools

    def pool_remove(self, name: str) -> None:
        self._call("pool_remove")
        self.pools.pop(name, None)

    def volume_create(
        self,
        pool_name: str,
        name: str,
        *,
        capacity: int,
        backing_path: str | None = None,
        fmt: str = "qcow2",
    ) -> VolumeInfo:
        self._call("volume_create")
        return self._add(pool_name, FakeVolume(name, capacity, backing_path=backing_path or None))

    def volume_copy(
        self, pool_name: str, source_name: str, name: str, *, capacity: int | None = None
    ) -> VolumeInfo:
        self._call("volume_copy")
        source = self._volume(pool_name, source_name)
        capacity = max(capacity or 0, source.capacity)
        return self._add(pool_name, FakeVolume(name, capacity, allocation=source.allocation))

    def volume_upload(
        self, pool_name: str, name: str, source_file: str, *, on_bytes=None
    ) -> VolumeInfo:
        self._call("volume_upload")
        with open(source_file, "rb") as handle:
            data = handle.read()
        if on_bytes:
            on_bytes(len(data), len(data))
        header = _qcow2_header(data[:65536])
        capacity, backing = header if header else (len(data), None)
        return self._add(
            pool_name, FakeVolume(name, capacity, len(data), backing_path=backing, data=data)
        )

    def volume_transfer(
        self,
        source_pool: str,
        target: FakeHypervisor,
        target_pool: str,
        name: str,
        *,
        sparse: bool = True,
        on_bytes=None,
    ) -> VolumeInfo:
        self._call("volume_transfer")
        target._call("volume_transfer")
        source = self._volume(source_pool, name)
        pool = target._pool(target_pool)
        if on_bytes:  # in two halves, as a stream's pieces
            on_bytes(source.allocation // 2, source.allocation)
            on_bytes(source.allocation, source.allocation)
        pool.volumes[name] = copy.deepcopy(source)
        return target._info(target_pool, pool.volumes[name])

    def volume_info(self, pool_name: str, name: str) -> VolumeInfo:
        self._call("volume_info")
        return self._info(pool_name, self._volume(pool_name, name))

    def volume_delete(self, pool_name: str, name: str) -> bool:
        self._call("volume_delete")
        return self._pool(pool_name).volumes.pop(name, None) is not None

    def pool_refresh(self, pool_name: str) -> None:
        self._call("pool_refresh")
        self._pool(pool_name)

    def volume_names(self, pool_name: str) -> list[str]:
        self._call("volume_names")
        return sorted(self._pool(pool_name).volumes)

    def volume_rebase(
        self, pool_name: str, name: str, backing_path: str | None, *, should_stop=None
    ) -> VolumeInfo:
        self._call("volume_rebase")
        if should_stop and should_stop():
            raise Interrupted("The rebase was stopped to give way; nothing was changed.")
        if not uri_is_local(self.uri):
            raise HypervisorError(f"Layers on {self.uri} can only be merged while their VM runs.")
        volume = self._volume(pool_name, name)
        path = self._info(pool_name, volume).path
        if any(path in self._chain(dom) for dom in self.domains_by_uuid.values() if dom.running):
            raise HypervisorError(
                f"Merging the layer failed: Could not open '{path}': Failed to get \"write\" lock"
            )
        volume.backing_path = backing_path or None
        return self._info(pool_name, volume)

    def volumes_delete_prefixed(self, pool_name: str, prefix: str) -> None:
        self._call("volumes_delete_prefixed")
        pool = self._pool(pool_name)
        for name in [n for n in pool.volumes if n.startswith(prefix)]:
            del pool.volumes[name]

    def pool_capacity(self, pool_name: str) -> int:
        self._call("pool_capacity")
        return self._pool(pool_name).capacity

    def host_resources(self) -> dict:
        self._call("host_resources")
        return {"memory_mib": self.memory_mib, "cpus": self.cpus}

    # --- The guests' network -------------------------------------------------------------

    def network_ensure(self, spec: NetworkSpec, *, host_addresses: list[str]) -> None:
        self._call("network_ensure")
        self.filters[spec.filter_name] = guest_filter_xml(spec, host_addresses, None)
        network = self.networks.setdefault(spec.name, FakeNetwork(network_xml(spec)))
        network.active = True

    def network_active(self, name: str) -> bool:
        self._call("network_active")
        return name in self.networks and self.networks[name].active

    def network_reserve(self, name: str, *, mac: str, address: str) -> None:
        self._call("network_reserve")
        reservations = self._network(name).reservations
        mac = mac.lower()
        for other_mac, other_address in list(reservations.items()):
            if other_mac == mac or other_address == address:
                del reservations[other_mac]
        reservations[mac] = address

    def network_reservations(self, name: str) -> dict[str, str]:
        self._call("network_reservations")
        return dict(self._network(name).reservations)

    def network_leases(self, name: str) -> dict[str, str]:
        self._call("network_leases")
        network = self.networks.get(name)
        return {} if network is None else dict(network.leases)

    def network_release(self, name: str, *, mac: str) -> None:
        self._call("network_release")
        network = self.networks.get(name)
        if network is not None:
            network.reservations.pop(mac.lower(), None)

    def network_remove(self, spec: NetworkSpec) -> None:
        self._call("network_remove")
        self.networks.pop(spec.name, None)
        self.filters.pop(spec.filter_name, None)

    # --- Domains ---------------------------------------------------------------------------

    def domain_define(self, xml: str) -> None:
        self._call("domain_define")
        domain_uuid = uuid.UUID(ET.fromstring(xml).findtext("uuid"))
        dom = self.domains_by_uuid.get(domain_uuid)
        if dom is None:
            self.domains_by_uuid[domain_uuid] = FakeDomain(xml)
        else:
            dom.xml = xml  # a running guest keeps what it runs with until it stops

    def domain_state(self, domain_uuid: uuid.UUID) -> str | None:
        self._call("domain_state")
        dom = self.domains_by_uuid.get(uuid.UUID(str(domain_uuid)))
        if dom is None:
            return None
        return "running" if dom.running else "shutoff"

    def domain_start(self, domain_uuid: uuid.UUID) -> None:
        self._call("domain_start")
        dom = self._domain(domain_uuid)
        if not dom.running:
            dom.live_xml = dom.xml

    def domain_shutdown(self, domain_uuid: uuid.UUID, *, timeout: float) -> bool:
        self._call("domain_shutdown")
        dom = self._domain(domain_uuid)
        if dom.running and self.obeys_power_button:
            dom.live_xml = None
        return not dom.running

    def domain_destroy(self, domain_uuid: uuid.UUID) -> None:
        self._call("domain_destroy")
        dom = self.domains_by_uuid.get(uuid.UUID(str(domain_uuid)))
        if dom is not None:
            dom.live_xml = None

    def domain_undefine(self, domain_uuid: uuid.UUID) -> bool:
        self._call("domain_undefine")
        return self.domains_by_uuid.pop(uuid.UUID(str(domain_uuid)), None) is not None

    def domain_xml_of(self, domain_uuid: uuid.UUID, *, inactive: bool = False) -> str:
        self._call("domain_xml_of")
        dom = self._domain(domain_uuid)
        return dom.xml if inactive or not dom.running else dom.live_xml

    def domain_disk_path(self, domain_uuid: uuid.UUID) -> str | None:
        return disk_path_in(self.domain_xml_of(domain_uuid))

    def domain_agent_connected(self, domain_uuid: uuid.UUID) -> bool:
        return agent_connected_in(self.domain_xml_of(domain_uuid))

    def domain_agent_answers(self, domain_uuid: uuid.UUID) -> bool:
        self._call("domain_agent_answers")
        return self.domain_agent_connected(domain_uuid)

    def domain_guest_info(self, domain_uuid: uuid.UUID):
        """What a test put in `agent_answers` for a running guest, else None."""
        self._call("domain_guest_info")
        dom = self.domains_by_uuid.get(uuid.UUID(str(domain_uuid)))
        if dom is None or not dom.running:
            return None
        return self.agent_answers.get(uuid.UUID(str(domain_uuid)))

    def _chain(self, dom: FakeDomain) -> list[str]:
        """The files QEMU has open for a running guest's disk, read from the volumes' backing
        paths (a stopped guest has only its top layer in its definition)."""
        path = disk_path_in(dom.live_xml or dom.xml)
        chain = [path]
        while dom.running:
            try:
                path = self._volume_at(path).backing_path
            except VolumeNotFound:
                break
            if path is None:
                break
            chain.append(path)
        return chain

    def domain_disk_chain(self, domain_uuid: uuid.UUID) -> list[str]:
        self._call("domain_disk_chain")
        return self._chain(self._domain(domain_uuid))

    def domain_snapshot_disk(
        self,
        domain_uuid: uuid.UUID,
        new_top_path: str,
        *,
        quiesce: bool,
        memory_path: str | None = None,
    ) -> None:
        self._call("domain_snapshot_disk")
        dom = self._running(domain_uuid) if memory_path else self._domain(domain_uuid)
        self._volume_at(new_top_path)  # the layer is prepared beforehand and reused
        if quiesce and not (dom.running and agent_connected_in(dom.live_xml)):
            raise HypervisorError(
                "Guest agent is not responding: QEMU guest agent is not connected"
            )
        if memory_path:
            memory = self._volume_at(memory_path)
            memory_mib = int(ET.fromstring(dom.live_xml).findtext("memory"))
            memory.allocation = memory.capacity = memory_mib * MIB
            self.saved_memory[memory_path] = SavedMemory(
                uuid.UUID(str(domain_uuid)), disk_path_in(dom.live_xml)
            )
        if dom.running:
            dom.live_xml = _with_disk_path(dom.live_xml, new_top_path)
        dom.xml = _with_disk_path(dom.xml, new_top_path)

    def domain_restore_memory(
        self,
        domain_uuid: uuid.UUID,
        memory_path: str,
        *,
        saved_disk_path: str,
        disk_path: str,
    ) -> None:
        self._call("domain_restore_memory")
        saved = self.saved_memory.get(memory_path)
        if saved is None:
            raise HypervisorError(f"operation failed: failed to read qemu header of {memory_path}")
        if saved.domain_uuid != uuid.UUID(str(domain_uuid)):
            raise MemoryMismatch("The saved memory belongs to another VM; it was not restored.")
        if saved.disk_path != saved_disk_path:
            raise MemoryMismatch(
                "The saved memory was taken with another disk than the snapshot's; "
                "it was not restored."
            )
        dom = self._domain(domain_uuid)
        if dom.running:
            raise InvalidDomainState("Requested operation is not valid: domain is already active")
        dom.live_xml = _with_disk_path(dom.xml, disk_path)

    def domain_fork_memory(
        self,
        domain_uuid: uuid.UUID,
        memory_path: str,
        *,
        saved_disk_path: str,
        disk_path: str,
        work_path: str,
    ) -> None:
        self._call("domain_fork_memory")
        saved = self.saved_memory.get(memory_path)
        if saved is None:
            raise MemoryMismatch(f"The saved memory cannot be read: {memory_path}")
        if saved.disk_path != saved_disk_path:
            raise MemoryMismatch(
                "The saved memory was taken with another disk than the snapshot's; "
                "it was not restored."
            )
        self._volume_at(work_path)
        dom = self._domain(domain_uuid)
        if dom.running:
            raise InvalidDomainState("Requested operation is not valid: domain is already active")
        dom.live_xml = _with_disk_path(dom.xml, disk_path)
        self.forked_from[uuid.UUID(str(domain_uuid))] = saved.domain_uuid

    def domain_block_pull(
        self,
        domain_uuid: uuid.UUID,
        *,
        base_path: str | None = None,
        on_progress=None,
        should_stop=None,
    ) -> None:
        self._call("domain_block_pull")
        dom = self._running(domain_uuid)
        if should_stop and should_stop():
            raise Interrupted("Stopped before the block pull started.")
        self._volume_at(disk_path_in(dom.live_xml)).backing_path = base_path
        if on_progress:
            on_progress(1.0)

    def domain_block_commit(
        self,
        domain_uuid: uuid.UUID,
        *,
        top_path: str,
        base_path: str,
        on_progress=None,
        should_stop=None,
    ) -> None:
        self._call("domain_block_commit")
        chain = self._chain(self._running(domain_uuid))
        if should_stop and should_stop():
            raise Interrupted("Stopped before the block commit started.")
        if top_path not in chain[1:] or base_path not in chain:
            raise HypervisorError(f"invalid argument: could not find image '{top_path}' in chain")
        above = chain[chain.index(top_path) - 1]
        self._volume_at(above).backing_path = base_path
        if on_progress:
            on_progress(1.0)

    def domains(self) -> list[DomainRecord]:
        self._call("domains")
        records = []
        for domain_uuid, dom in self.domains_by_uuid.items():
            root = ET.fromstring(dom.xml)
            ours = root.find(f"metadata/{{{METADATA_NS}}}vm")
            if ours is None:
                continue
            records.append(
                DomainRecord(
                    uuid=domain_uuid,
                    name=root.findtext("name"),
                    active=dom.running,
                    metadata=dict(ours.attrib),
                )
            )
        return records

    def console_read(self, pool_name: str, name: str, max_bytes: int) -> tuple[bytes, int]:
        self._call("console_read")
        pool = self.pools.get(pool_name)
        volume = None if pool is None else pool.volumes.get(name)
        if volume is None:
            return b"", 0
        size = len(volume.data)
        return volume.data[max(0, size - max_bytes) :], size

    def console_send(self, domain_uuid: uuid.UUID, data: bytes) -> None:
        self._call("console_send")
        if not self._domain(domain_uuid).running:
            raise InvalidDomainState("The VM is not running, so its console takes no input.")
        key = uuid.UUID(str(domain_uuid))
        self.console_input[key] = self.console_input.get(key, b"") + data
