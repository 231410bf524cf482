"""The libvirt adapter: `Hypervisor`, one libvirt host behind one URI.

It speaks in typed values (UUIDs, paths, byte counts), builds every XML document with
ElementTree, does all disk work through libvirt's storage-pool API and block jobs (so a remote
host over `qemu+ssh://` works with the same code; the one exception, merging a layer no guest has
open, runs `qemu-img` and needs the pool on this machine), reads consoles through the storage API
and console streams, moves volumes between hosts through storage streams, and turns libvirt's
errors into the exceptions of `vms.hypervisor.errors`.
Connections are opened lazily, one per process and URI (`connect`), and a `Hypervisor` asks for
its connection at every call rather than keeping one: django-q2 forks its workers, a libvirt
connection must not cross a fork, and a connection that died is reopened.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import libvirt
import libvirt_qemu

from vms.hypervisor import savefile
from vms.hypervisor.definitions import (
    agent_connected_in,
    canonical_xml,
    disk_chain_in,
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
    METADATA_PREFIX,
    DomainRecord,
    GuestInfo,
    NetworkSpec,
    VolumeInfo,
    uri_is_local,
)

_UNAVAILABLE_CODES = {
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_AUTH_FAILED,
}


def _translate(exc: libvirt.libvirtError) -> HypervisorError:
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return DomainNotFound(message)
    if code == libvirt.VIR_ERR_NO_STORAGE_VOL:
        return VolumeNotFound(message)
    if code == libvirt.VIR_ERR_NO_STORAGE_POOL:
        return PoolNotFound(message)
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return InvalidDomainState(message)
    if code in _UNAVAILABLE_CODES or exc.get_error_domain() == libvirt.VIR_FROM_RPC:
        return HypervisorUnavailable(f"libvirt is unreachable: {message}")
    return HypervisorError(message)


def _agent_uptime(dom) -> float | None:
    """Seconds since the guest booted, read from its /proc/uptime through the agent."""
    import libvirt_qemu

    def ask(command: str, **arguments) -> dict:
        text = json.dumps({"execute": command, "arguments": arguments})
        return json.loads(libvirt_qemu.qemuAgentCommand(dom, text, AGENT_INFO_SECONDS, 0))["return"]

    try:
        handle = ask("guest-file-open", path="/proc/uptime", mode="r")
        try:
            data = base64.b64decode(ask("guest-file-read", handle=handle, count=64)["buf-b64"])
        finally:
            ask("guest-file-close", handle=handle)
        return float(data.split()[0])
    except (libvirt.libvirtError, KeyError, ValueError, IndexError, TypeError):
        return None


@contextmanager
def _libvirt_errors() -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise _translate(exc) from exc


# libvirt prints every error to stderr by default; the errors are raised as exceptions instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_connections: dict[tuple[int, str], libvirt.virConnect] = {}
_checked_at: dict[tuple[int, str], float] = {}
_connections_lock = threading.Lock()
# How long a connection that answered is trusted before it is asked again.
CHECK_INTERVAL = 1.0


def connect(uri: str) -> libvirt.virConnect:
    """This process's connection to `uri`, opened on first use and reopened when it died."""
    key = (os.getpid(), uri)
    with _connections_lock:
        conn = _connections.pop(key, None)
        if conn is not None:
            if time.monotonic() - _checked_at.get(key, 0) < CHECK_INTERVAL:
                _connections[key] = conn
                return conn
            try:
                # A cheap real call: isAlive() can still say yes for a while after libvirtd
                # restarted, and every call on that connection would then fail.
                conn.getLibVersion()
            except libvirt.libvirtError:
                with suppress(libvirt.libvirtError):
                    conn.close()
            else:
                _connections[key] = conn
                _checked_at[key] = time.monotonic()
                return conn
        _reachable_or_raise(uri)
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise HypervisorUnavailable(
                f"libvirt at {uri} does not answer: {exc.get_error_message() or exc}"
            ) from exc
        if not uri_is_local(uri):
            # A host that goes away mid-call is noticed within seconds, not minutes.
            with suppress(libvirt.libvirtError):
                conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        _connections[key] = conn
        _checked_at[key] = time.monotonic()
        return conn


CONNECT_TIMEOUT = 3.0
# How long a guest agent may take to answer (freezing file systems, a shutdown) before libvirt
# gives up on it and the service goes on without it.
AGENT_RESPONSE_SECONDS = 5
# What a page asks of an agent must not keep the page waiting.
AGENT_INFO_SECONDS = 2
# At most this many interfaces, addresses of each, and addresses in all, from a guest's agent.
GUEST_INFO_ITEMS = 8
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
_DEFAULT_PORTS = {"tcp": 16509, "tls": 16514, "ssh": 22, "libssh": 22, "libssh2": 22}


def _reachable_or_raise(uri: str) -> None:
    """Refuse within CONNECT_TIMEOUT a remote host whose port does not answer: libvirt itself
    waits for the operating system's TCP timeout (minutes) on a host that is gone."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    if transport not in _DEFAULT_PORTS or not parts.hostname:
        return
    import socket

    address = (parts.hostname, parts.port or _DEFAULT_PORTS[transport])
    try:
        socket.create_connection(address, timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise HypervisorUnavailable(
            f"libvirt at {uri} does not answer ({exc.strerror or exc}); the host may be down."
        ) from None


def _volume_info(vol: libvirt.virStorageVol) -> VolumeInfo:
    _type, capacity, allocation = vol.info()
    root = ET.fromstring(vol.XMLDesc(0))
    backing = root.findtext("backingStore/path")
    return VolumeInfo(
        name=vol.name(),
        path=vol.path(),
        capacity=capacity,
        allocation=allocation,
        backing_path=backing or None,
    )


TRANSFER_CHUNK = 1024 * 1024


def _nwfilter_uuid(conn: libvirt.virConnect, name: str) -> str | None:
    try:
        return conn.nwfilterLookupByName(name).UUIDString()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NWFILTER:
            raise
        return None


_STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "running",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "paused",
}


def _interfaces_as_defined(saved: ET.Element, defined: ET.Element) -> None:
    """Give the network cards of a saved definition the connection of the current one (this
    host's guests' network and filter, or a pulled cable), keeping the saved card's slot."""
    for card, wanted in zip(
        saved.findall("devices/interface"), defined.findall("devices/interface"), strict=False
    ):
        kept = [card.find(tag) for tag in ("address", "mac", "model")]
        card.clear()
        card.attrib.update(wanted.attrib)
        for child in wanted:
            if child.tag not in ("address", "mac", "model", "target", "alias"):
                card.append(child)
        for child in kept:
            if child is not None:
                card.append(child)


def _saved_disk(saved: ET.Element, saved_disk_path: str) -> ET.Element:
    """The one disk of a saved definition, checked to be `saved_disk_path`, with the chain under
    it left out (QEMU reads that from the qcow2 header of the layer put in its place)."""
    disks = [d for d in saved.findall("devices/disk") if d.get("device", "disk") == "disk"]
    sources = [d.find("source") for d in disks]
    if len(disks) != 1 or sources[0] is None or sources[0].get("file") != saved_disk_path:
        raise MemoryMismatch(
            "The saved memory was taken with another disk than the snapshot's; it was not restored."
        )
    for backing in disks[0].findall("backingStore"):
        disks[0].remove(backing)
    return disks[0]


def _amount(root: ET.Element, tag: str) -> int | None:
    """A domain's memory (in KiB) or processor count, as libvirt writes it."""
    element = root.find(tag)
    if element is None or not (element.text or "").strip().isdigit():
        return None
    value = int(element.text)
    units = {"KiB": 1, "k": 1, "MiB": 1024, "M": 1024, "GiB": 1024 * 1024, "G": 1024 * 1024}
    return value * units.get(element.get("unit", "KiB"), 1) if tag != "vcpu" else value


def _identity_as_defined(saved: ET.Element, defined: ET.Element) -> None:
    """Give a saved definition the identity of the defined domain it resumes as: its name,
    UUID, metadata, firmware configuration entries and console log."""
    for tag in ("name", "uuid"):
        saved.find(tag).text = defined.findtext(tag)
    for tag in ("metadata", "sysinfo"):
        position = None
        for index, element in enumerate(list(saved)):
            if element.tag == tag:
                position = index
                saved.remove(element)
        wanted = defined.find(tag)
        if wanted is not None:
            saved.insert(position if position is not None else 3, wanted)
    wanted_logs = [log.get("file") for log in defined.findall("devices/serial/log")]
    for log, file in zip(saved.findall("devices/serial/log"), wanted_logs, strict=False):
        log.set("file", file)


def _block_job_wait(dom: libvirt.virDomain, on_progress=None, should_stop=None) -> None:
    """Wait for the disk's block job, if one runs (one that a dead worker started, too). When
    `should_stop()` says so, cancel it and raise `Interrupted`: a block pull or a commit below
    the top layer cancelled half-way has copied only data the chain already showed."""
    while True:
        info = dom.blockJobInfo(DISK_TARGET, 0)
        if not info:
            return
        if should_stop and should_stop():
            try:
                dom.blockJobAbort(DISK_TARGET, 0)
            except libvirt.libvirtError:
                if dom.blockJobInfo(DISK_TARGET, 0):
                    raise
                return  # it ended on its own just now: the work is done
            while dom.blockJobInfo(DISK_TARGET, 0):
                time.sleep(0.05)
            raise Interrupted("The block job was cancelled to give way; nothing was changed.")
        if on_progress and info.get("end"):
            on_progress(info["cur"] / info["end"])
        time.sleep(0.1)


# How long a pool's re-read waits for volumes being made or deleted in it by other calls.
POOL_BUSY_SECONDS = 10.0


def _pool_refresh(pool: libvirt.virStoragePool) -> None:
    """Re-read the pool's folder. libvirt refuses while a volume is being built in the pool
    ("has asynchronous jobs running": another worker making a layer); that lasts milliseconds,
    so the re-read is tried again for up to POOL_BUSY_SECONDS."""
    deadline = time.monotonic() + POOL_BUSY_SECONDS
    while True:
        try:
            pool.refresh(0)
            return
        except libvirt.libvirtError as exc:
            busy = "asynchronous jobs running" in (exc.get_error_message() or "")
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


# QEMU notices a new reader of the console's pty by polling once a second, and only then reads
# what was typed; closing the stream sooner leaves the input waiting in the pty.
CONSOLE_HOLD_SECONDS = 1.3


class Hypervisor:
    """One libvirt host, named by its URI: its storage pools and volumes, its guests' network,
    its domains. Every method is one piece of work on that host, in typed values."""

    def __init__(self, uri: str):
        self.uri = uri

    def __repr__(self) -> str:
        return f"Hypervisor({self.uri!r})"

    @property
    def connection(self) -> libvirt.virConnect:
        """This process's connection to the host (see `connect`)."""
        return connect(self.uri)

    def version(self) -> str:
        """libvirt's version on the far side of the URI, as "9.0.0"."""
        with _libvirt_errors():
            number = self.connection.getLibVersion()
        return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"

    def pool_ensure(self, name: str, path: str) -> None:
        """Define, build and start a directory pool, unless it is already there and running."""
        conn = self.connection
        with _libvirt_errors():
            try:
                pool = conn.storagePoolLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                    raise
                root = ET.Element("pool", type="dir")
                ET.SubElement(root, "name").text = name
                target = ET.SubElement(root, "target")
                ET.SubElement(target, "path").text = path
                pool = conn.storagePoolDefineXML(ET.tostring(root, encoding="unicode"), 0)
                pool.build(0)
                pool.setAutostart(1)
            if not pool.isActive():
                pool.create(0)

    def pool_exists(self, name: str) -> bool:
        with _libvirt_errors():
            try:
                return bool(self.connection.storagePoolLookupByName(name).isActive())
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                    return False
                raise

    def pool_remove(self, name: str) -> None:
        """Delete every volume of a pool, then the pool itself (used to tear down test pools)."""
        with _libvirt_errors():
            try:
                pool = self.connection.storagePoolLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                    return
                raise
            if pool.isActive():
                _pool_refresh(pool)
                for vol in pool.listAllVolumes(0):
                    vol.delete(0)
                pool.destroy()
            # A folder that holds foreign files stays; the pool definition goes all the same.
            with suppress(libvirt.libvirtError):
                pool.delete(0)
            pool.undefine()

    def _pool(self, pool_name: str) -> libvirt.virStoragePool:
        return self.connection.storagePoolLookupByName(pool_name)

    def volume_create(
        self,
        pool_name: str,
        name: str,
        *,
        capacity: int,
        backing_path: str | None = None,
        fmt: str = "qcow2",
    ) -> VolumeInfo:
        """A new volume; with `backing_path`, a copy-on-write layer on top of that file.

        Creating a qcow2 layer writes only its header: the cost does not depend on the disk size.
        """
        root = ET.Element("volume")
        ET.SubElement(root, "name").text = name
        ET.SubElement(root, "capacity", unit="bytes").text = str(capacity)
        ET.SubElement(root, "allocation", unit="bytes").text = "0"
        target = ET.SubElement(root, "target")
        ET.SubElement(target, "format", type=fmt)
        if fmt == "qcow2":
            # qcow2 v3: zero clusters and lazy refcounts (libvirt would otherwise write v2).
            ET.SubElement(target, "compat").text = "1.1"
        if backing_path:
            backing = ET.SubElement(root, "backingStore")
            ET.SubElement(backing, "path").text = backing_path
            ET.SubElement(backing, "format", type="qcow2")
        with _libvirt_errors():
            vol = self._pool(pool_name).createXML(ET.tostring(root, encoding="unicode"), 0)
            return _volume_info(vol)

    def volume_copy(
        self, pool_name: str, source_name: str, name: str, *, capacity: int | None = None
    ) -> VolumeInfo:
        """A full, independent qcow2 copy of a volume and everything it is layered on."""
        with _libvirt_errors():
            pool = self._pool(pool_name)
            source = pool.storageVolLookupByName(source_name)
            capacity = max(capacity or 0, source.info()[1])
            root = ET.Element("volume")
            ET.SubElement(root, "name").text = name
            ET.SubElement(root, "capacity", unit="bytes").text = str(capacity)
            target = ET.SubElement(root, "target")
            ET.SubElement(target, "format", type="qcow2")
            ET.SubElement(target, "compat").text = "1.1"
            vol = pool.createXMLFrom(ET.tostring(root, encoding="unicode"), source, 0)
            return _volume_info(vol)

    def volume_upload(
        self, pool_name: str, name: str, source_file: str, *, on_bytes=None
    ) -> VolumeInfo:
        """Upload a local file as a new volume, through a libvirt stream (works for remote hosts).
        `on_bytes(done, total)` hears how much of the file has gone, after each piece.

        The volume's format is then probed from its content, so a qcow2 file becomes a qcow2 volume.
        """
        size = os.path.getsize(source_file)
        conn = self.connection
        with _libvirt_errors():
            pool = self._pool(pool_name)
            root = ET.Element("volume")
            ET.SubElement(root, "name").text = name
            ET.SubElement(root, "capacity", unit="bytes").text = str(size)
            ET.SubElement(ET.SubElement(root, "target"), "format", type="raw")
            vol = pool.createXML(ET.tostring(root, encoding="unicode"), 0)
            stream = conn.newStream(0)
            try:
                vol.upload(stream, 0, size, 0)
                sent = 0

                def piece(_stream, nbytes: int, handle) -> bytes:
                    nonlocal sent
                    data = handle.read(nbytes)
                    sent += len(data)
                    if on_bytes:
                        on_bytes(sent, size)
                    return data

                with open(source_file, "rb") as handle:
                    stream.sendAll(piece, handle)
                stream.finish()
            except BaseException:
                stream.abort()
                vol.delete(0)
                raise
            _pool_refresh(pool)
            return _volume_info(pool.storageVolLookupByName(name))

    def volume_transfer(
        self,
        source_pool: str,
        target: Hypervisor,
        target_pool: str,
        name: str,
        *,
        sparse: bool = True,
        on_bytes=None,
    ) -> VolumeInfo:
        """Copy a volume from this host's pool into another host's, under the same name, as it
        is (a qcow2 layer keeps its header, so its backing path too). `on_bytes(done, total)`
        hears how far into the file the copy is (holes count as gone) after each piece.

        The file streams from libvirt to libvirt through this process, holes as holes (sparse
        streams): nothing is written to a temporary file, and unallocated space is not sent
        (`sparse=False` sends every byte: the benchmarks' baseline). A leftover of an earlier copy
        cut short is replaced.
        """
        down_flags = libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM if sparse else 0
        up_flags = libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM if sparse else 0
        recv_flags = libvirt.VIR_STREAM_RECV_STOP_AT_HOLE if sparse else 0
        source_conn, target_conn = self.connection, target.connection
        with _libvirt_errors():
            source = self._pool(source_pool).storageVolLookupByName(name)
            _type, _capacity, physical = source.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)
            pool = target._pool(target_pool)
            with suppress(libvirt.libvirtError):
                pool.storageVolLookupByName(name).delete(0)
            root = ET.Element("volume")
            ET.SubElement(root, "name").text = name
            ET.SubElement(root, "capacity", unit="bytes").text = str(physical)
            ET.SubElement(root, "allocation", unit="bytes").text = "0"
            ET.SubElement(ET.SubElement(root, "target"), "format", type="raw")
            copy = pool.createXML(ET.tostring(root, encoding="unicode"), 0)
            down = source_conn.newStream(0)
            up = target_conn.newStream(0)
            try:
                source.download(down, 0, 0, down_flags)
                copy.upload(up, 0, 0, up_flags)
                done = 0
                while True:
                    data = down.recvFlags(TRANSFER_CHUNK, recv_flags)
                    if data == -3:
                        hole = down.recvHole(0)
                        up.sendHole(hole, 0)
                        done += hole
                    elif isinstance(data, int):
                        raise HypervisorError(f"Reading {name} from {self.uri} failed.")
                    elif not data:
                        break
                    else:
                        sent = 0
                        while sent < len(data):
                            sent += up.send(data[sent:])
                        done += sent
                    if on_bytes:
                        on_bytes(min(done, physical), physical)
                down.finish()
                up.finish()
            except BaseException:
                for stream in (down, up):
                    with suppress(libvirt.libvirtError):
                        stream.abort()
                with suppress(libvirt.libvirtError):
                    copy.delete(0)
                raise
            # Re-read the folder: the volume's format and backing file are probed from its header.
            _pool_refresh(pool)
            return _volume_info(pool.storageVolLookupByName(name))

    def volume_info(self, pool_name: str, name: str) -> VolumeInfo:
        with _libvirt_errors():
            return _volume_info(self._pool(pool_name).storageVolLookupByName(name))

    def volume_delete(self, pool_name: str, name: str) -> bool:
        """Delete a volume. Deleting one that is already gone is not an error: returns False."""
        with _libvirt_errors():
            try:
                vol = self._pool(pool_name).storageVolLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                    return False
                raise
            vol.delete(0)
            return True

    def pool_refresh(self, pool_name: str) -> None:
        """Re-read the pool's folder (after QEMU changed a volume's backing file behind libvirt)."""
        with _libvirt_errors():
            _pool_refresh(self._pool(pool_name))

    def volume_names(self, pool_name: str) -> list[str]:
        """Names of the volumes in the pool, after re-reading the folder."""
        with _libvirt_errors():
            pool = self._pool(pool_name)
            _pool_refresh(pool)
            return sorted(pool.listVolumes())

    def network_ensure(self, spec: NetworkSpec, *, host_addresses: list[str]) -> None:
        """Define, start and autostart the guests' network, and (re)define their filter, on the
        host.

        A network already defined under the name is kept as it is (guests may be attached to
        it); the filter is rewritten when it differs, so a change of the host's addresses reaches
        running guests (libvirt re-applies a redefined filter to every interface that uses it)."""
        with _libvirt_errors():
            conn = self.connection
            filter_uuid = _nwfilter_uuid(conn, spec.filter_name)
            wanted = guest_filter_xml(spec, host_addresses, filter_uuid)
            # Redefining a filter makes libvirt rebuild the rules of every guest using it: only
            # when something changed.
            if filter_uuid is None or canonical_xml(
                conn.nwfilterLookupByName(spec.filter_name).XMLDesc(0)
            ) != canonical_xml(wanted):
                conn.nwfilterDefineXML(wanted)
            try:
                network = conn.networkLookupByName(spec.name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                    raise
                network = conn.networkDefineXML(network_xml(spec))
            if not network.isActive():
                network.create()
            if not network.autostart():
                network.setAutostart(1)

    def network_active(self, name: str) -> bool:
        """Whether the network is defined and running on the host."""
        with _libvirt_errors():
            try:
                return bool(self.connection.networkLookupByName(name).isActive())
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                    return False
                raise

    def network_reserve(self, name: str, *, mac: str, address: str) -> None:
        """Make the network's DHCP hand `address` to `mac` (and to no one else), live and in its
        definition. Earlier reservations of either are replaced."""
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        section = libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST
        with _libvirt_errors():
            network = self.connection.networkLookupByName(name)
            dhcp = ET.fromstring(network.XMLDesc(0)).find("ip/dhcp")
            for entry in [] if dhcp is None else dhcp.findall("host"):
                if entry.get("mac", "").lower() == mac.lower() and entry.get("ip") == address:
                    return
                if entry.get("mac", "").lower() == mac.lower() or entry.get("ip") == address:
                    xml = ET.tostring(entry, encoding="unicode")
                    network.update(
                        libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, section, -1, xml, flags
                    )
            xml = ET.tostring(ET.Element("host", mac=mac, ip=address), encoding="unicode")
            network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, section, -1, xml, flags)

    def network_reservations(self, name: str) -> dict[str, str]:
        """The network's DHCP reservations in its live definition: each reserved MAC (lower
        case) with its address."""
        with _libvirt_errors():
            network = self.connection.networkLookupByName(name)
            dhcp = ET.fromstring(network.XMLDesc(0)).find("ip/dhcp")
        return {
            entry.get("mac", "").lower(): entry.get("ip", "")
            for entry in ([] if dhcp is None else dhcp.findall("host"))
        }

    def network_leases(self, name: str) -> dict[str, str]:
        """The addresses DHCP has leased on the network and not seen expire, each with its MAC
        (a deleted guest's lease lives on until it expires: dnsmasq will not give that address to
        another MAC before then, reservation or not)."""
        with _libvirt_errors():
            try:
                network = self.connection.networkLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                    return {}
                raise
            return {
                lease["ipaddr"]: (lease.get("mac") or "").lower()
                for lease in network.DHCPLeases()
                if lease.get("ipaddr")
            }

    def network_release(self, name: str, *, mac: str) -> None:
        """Forget the DHCP reservation of `mac`, if the network has one."""
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        section = libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST
        with _libvirt_errors():
            try:
                network = self.connection.networkLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                    return
                raise
            dhcp = ET.fromstring(network.XMLDesc(0)).find("ip/dhcp")
            for entry in [] if dhcp is None else dhcp.findall("host"):
                if entry.get("mac", "").lower() == mac.lower():
                    xml = ET.tostring(entry, encoding="unicode")
                    network.update(
                        libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, section, -1, xml, flags
                    )

    def network_remove(self, spec: NetworkSpec) -> None:
        """Stop and forget the network and its filter (tests and uninstalls)."""
        with _libvirt_errors():
            conn = self.connection
            with suppress(libvirt.libvirtError):
                network = conn.networkLookupByName(spec.name)
                with suppress(libvirt.libvirtError):
                    network.destroy()
                network.undefine()
            with suppress(libvirt.libvirtError):
                conn.nwfilterLookupByName(spec.filter_name).undefine()

    def _domain(self, domain_uuid: uuid.UUID) -> libvirt.virDomain:
        return self.connection.lookupByUUIDString(str(domain_uuid))

    def domain_define(self, xml: str) -> None:
        """Define a domain, or update the definition of the one with the same UUID."""
        with _libvirt_errors():
            self.connection.defineXML(xml)

    def domain_state(self, domain_uuid: uuid.UUID) -> str | None:
        """ "running", "shutoff", "paused" or "crashed"; None when no such domain is defined."""
        with _libvirt_errors():
            try:
                state, _reason = self._domain(domain_uuid).state(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise
        return _STATE_NAMES.get(state, "nostate")

    def domain_start(self, domain_uuid: uuid.UUID) -> None:
        """Boot the guest; a guest that already runs is left alone."""
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
            if not dom.isActive():
                dom.create()

    def domain_shutdown(self, domain_uuid: uuid.UUID, *, timeout: float) -> bool:
        """Ask the guest to power off and wait up to `timeout` seconds. True if it obeyed.

        Its guest agent is asked first when it has one connected (a clean shutdown that does
        not depend on the guest's ACPI handling); the ACPI power button otherwise, or when the
        agent does not answer within AGENT_RESPONSE_SECONDS."""
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
            if not dom.isActive():
                return True
            asked = False
            if agent_connected_in(dom.XMLDesc(0)):
                with suppress(libvirt.libvirtError):
                    dom.agentSetResponseTimeout(AGENT_RESPONSE_SECONDS, 0)
                try:
                    dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
                    asked = True
                except libvirt.libvirtError:
                    pass
            try:
                if not asked:
                    dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                    raise
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not dom.isActive():
                    return True
                time.sleep(0.2)
            return not dom.isActive()

    def domain_destroy(self, domain_uuid: uuid.UUID) -> None:
        """Pull the plug. A guest that is not running, or not defined, is left as it is."""
        with _libvirt_errors():
            try:
                dom = self._domain(domain_uuid)
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() in {
                    libvirt.VIR_ERR_NO_DOMAIN,
                    libvirt.VIR_ERR_OPERATION_INVALID,
                }:
                    return
                raise

    def domain_undefine(self, domain_uuid: uuid.UUID) -> bool:
        """Stop and forget a domain. Returns False when it was not defined."""
        with _libvirt_errors():
            try:
                dom = self._domain(domain_uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return False
                raise
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            return True

    def domain_xml_of(self, domain_uuid: uuid.UUID, *, inactive: bool = False) -> str:
        """The definition libvirt holds (the running one, or with `inactive` the persistent one)."""
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        with _libvirt_errors():
            return self._domain(domain_uuid).XMLDesc(flags)

    def domain_disk_path(self, domain_uuid: uuid.UUID) -> str | None:
        """The file the guest's disk writes to right now."""
        return disk_path_in(self.domain_xml_of(domain_uuid))

    def domain_guest_info(self, domain_uuid: uuid.UUID) -> GuestInfo | None:
        """What the guest's agent says: its system, host name, addresses and uptime; None when
        the guest is not running or has no agent answering within AGENT_INFO_SECONDS."""
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
            if not dom.isActive() or not agent_connected_in(dom.XMLDesc(0)):
                return None
            with suppress(libvirt.libvirtError):
                dom.agentSetResponseTimeout(AGENT_INFO_SECONDS, 0)
            try:
                info = dom.guestInfo(
                    libvirt.VIR_DOMAIN_GUEST_INFO_OS
                    | libvirt.VIR_DOMAIN_GUEST_INFO_HOSTNAME
                    | libvirt.VIR_DOMAIN_GUEST_INFO_INTERFACES,
                    0,
                )
            except libvirt.libvirtError:
                return None
            # What the guest's agent says is the guest's to choose: kept to a few short fields.
            addresses = []
            for i in range(min(int(info.get("if.count", 0)), GUEST_INFO_ITEMS)):
                for j in range(min(int(info.get(f"if.{i}.addr.count", 0)), GUEST_INFO_ITEMS)):
                    kind = info.get(f"if.{i}.addr.{j}.type")
                    address = info.get(f"if.{i}.addr.{j}.addr", "")
                    if kind == "ipv4" and address and not address.startswith("127."):
                        addresses.append(str(address)[:15])
            return GuestInfo(
                os_name=str(info.get("os.pretty-name") or info.get("os.name") or "")[:100],
                hostname=str(info.get("hostname", ""))[:64],
                addresses=tuple(addresses[:GUEST_INFO_ITEMS]),
                uptime_seconds=_agent_uptime(dom),
            )

    def domain_agent_connected(self, domain_uuid: uuid.UUID) -> bool:
        """Whether a guest agent has opened its channel (so the file systems can be quiesced)."""
        return agent_connected_in(self.domain_xml_of(domain_uuid))

    def domain_agent_answers(self, domain_uuid: uuid.UUID) -> bool:
        """Whether the guest agent answers a ping within AGENT_RESPONSE_SECONDS. A take asks
        before it has the agent freeze the file systems: a freeze sent to an agent that hangs is
        carried out whenever the agent wakes up, long after the take gave up on it, and nothing
        thaws the guest then (measured: every write in the guest blocked for good)."""
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
        try:
            libvirt_qemu.qemuAgentCommand(
                dom, '{"execute": "guest-ping"}', AGENT_RESPONSE_SECONDS, 0
            )
        except libvirt.libvirtError:
            return False
        return True

    def domain_snapshot_disk(
        self,
        domain_uuid: uuid.UUID,
        new_top_path: str,
        *,
        quiesce: bool,
        memory_path: str | None = None,
    ) -> None:
        """Switch a running guest's disk onto a prepared empty layer, atomically.

        An external snapshot without libvirt metadata, reusing the layer made through the storage
        API: the file the guest wrote until now becomes read-only and the new layer takes every
        write from here on. Disk only, the guest pauses for milliseconds, whatever the disk size.

        With `memory_path`, the guest's memory is saved into that file too, while it runs (live),
        and the disk switches at the very moment the memory is complete: the file the guest wrote
        until now is then exactly the disk that matches the saved memory (see
        `domain_restore_memory`). Quiescing is pointless then: memory and disk are one moment.
        """
        ET.register_namespace(METADATA_PREFIX, METADATA_NS)
        root = ET.Element("domainsnapshot")
        if memory_path:
            ET.SubElement(root, "memory", snapshot="external", file=memory_path)
        disks = ET.SubElement(root, "disks")
        disk = ET.SubElement(disks, "disk", name=DISK_TARGET, snapshot="external", type="file")
        ET.SubElement(disk, "driver", type="qcow2")
        ET.SubElement(disk, "source", file=new_top_path)
        flags = (
            libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
            | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
            | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
        )
        if memory_path:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE
        else:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            if quiesce:
                flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
            if quiesce and not memory_path:
                # A hung agent must not hold the guest's disk frozen: libvirt gives up then.
                with suppress(libvirt.libvirtError):
                    dom.agentSetResponseTimeout(AGENT_RESPONSE_SECONDS, 0)
            dom.snapshotCreateXML(ET.tostring(root, encoding="unicode"), flags)

    def domain_restore_memory(
        self, domain_uuid: uuid.UUID, memory_path: str, *, saved_disk_path: str, disk_path: str
    ) -> None:
        """Resume a stopped domain from memory saved by `domain_snapshot_disk`, on a new disk.

        libvirt 9.0 cannot revert external snapshots itself, so this does it: the definition saved
        with the memory names the disk the guest wrote when it was saved (`saved_disk_path`, now a
        snapshot's read-only layer); its disk is rewritten to `disk_path`, a new empty layer built
        on that one, so the guest finds exactly the disk it had and writes into the new layer. The
        memory is refused unless it was saved from this domain with exactly that disk: paired with
        another disk, the guest would wreck its file system.
        """
        conn = self.connection
        with _libvirt_errors():
            saved = conn.saveImageGetXMLDesc(memory_path, libvirt.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE)
        root = ET.fromstring(saved)
        if root.findtext("uuid") != str(domain_uuid):
            raise MemoryMismatch("The saved memory belongs to another VM; it was not restored.")
        _saved_disk(root, saved_disk_path).find("source").set("file", disk_path)
        with _libvirt_errors():
            defined = ET.fromstring(
                self._domain(domain_uuid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            )
        _interfaces_as_defined(root, defined)
        with _libvirt_errors():
            conn.restoreFlags(
                memory_path, ET.tostring(root, encoding="unicode"), libvirt.VIR_DOMAIN_SAVE_RUNNING
            )

    def domain_fork_memory(
        self,
        domain_uuid: uuid.UUID,
        memory_path: str,
        *,
        saved_disk_path: str,
        disk_path: str,
        work_path: str,
    ) -> None:
        """Resume memory saved by `domain_snapshot_disk` from another domain as the stopped
        domain `domain_uuid` (a new VM's, already defined), on `disk_path`, a new empty layer on
        the one the memory was saved with.

        The guest gets the saved machine as it was (the same devices in the same slots, the same
        memory and processors) under this domain's identity: its name and UUID, its network
        card's MAC and connection, its console log and what its firmware configuration hands
        the guest. A copy of the memory file with that definition in its header is written to
        `work_path` (on this host, a file the caller deletes afterwards), since libvirt restores
        a memory file only as the domain named in it. Refused (`MemoryMismatch`) unless the
        memory was saved with `saved_disk_path` and the new domain has as much memory and as many
        processors as the saved one.
        """
        if not uri_is_local(self.uri):
            raise MemoryMismatch(f"A VM on {self.uri} can only be started from its disk.")
        try:
            root = ET.fromstring(savefile.saved_definition(memory_path))
        except (OSError, savefile.SaveFileError, ET.ParseError) as exc:
            raise MemoryMismatch(f"The saved memory cannot be read: {exc}") from None
        disk = _saved_disk(root, saved_disk_path)
        with _libvirt_errors():
            defined = ET.fromstring(
                self._domain(domain_uuid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            )
        for tag in ("memory", "vcpu"):
            if _amount(root, tag) != _amount(defined, tag):
                raise MemoryMismatch(
                    "The saved memory was taken of a VM with another size; the new VM boots "
                    "from the disk instead."
                )
        disk.find("source").set("file", disk_path)
        _identity_as_defined(root, defined)
        _interfaces_as_defined(root, defined)
        for card, wanted in zip(
            root.findall("devices/interface"), defined.findall("devices/interface"), strict=False
        ):
            if card.find("mac") is not None and wanted.find("mac") is not None:
                card.find("mac").set("address", wanted.find("mac").get("address"))
        try:
            savefile.write_with_definition(
                memory_path, work_path, ET.tostring(root, encoding="unicode")
            )
        except (OSError, savefile.SaveFileError) as exc:
            raise HypervisorError(f"The saved memory could not be copied: {exc}") from None
        with _libvirt_errors():
            self.connection.restoreFlags(work_path, None, libvirt.VIR_DOMAIN_SAVE_RUNNING)

    def domain_block_pull(
        self,
        domain_uuid: uuid.UUID,
        *,
        base_path: str | None = None,
        on_progress=None,
        should_stop=None,
    ) -> None:
        """Copy into the running guest's top layer what the layers of its chain above
        `base_path` hold (everything, without a base), and put the top layer straight onto the
        base: those layers are then out of its chain. The guest keeps running; the copy takes
        time. Cancelled, and `Interrupted` raised, as soon as `should_stop()` says so."""
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
            _block_job_wait(dom)
            if should_stop and should_stop():
                raise Interrupted("Stopped before the block pull started.")
            dom.blockRebase(DISK_TARGET, base_path, 0, 0)
            _block_job_wait(dom, on_progress, should_stop)

    def domain_block_commit(
        self,
        domain_uuid: uuid.UUID,
        *,
        top_path: str,
        base_path: str,
        on_progress=None,
        should_stop=None,
    ) -> None:
        """Copy into `base_path` what `top_path` holds, two adjacent read-only layers of the running
        guest's chain, and put the layer above the top straight onto the base: the base then holds
        what the top showed, and the top is out of the chain. The guest keeps running. Cancelled,
        and `Interrupted` raised, as soon as `should_stop()` says so."""
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
            _block_job_wait(dom)
            if should_stop and should_stop():
                raise Interrupted("Stopped before the block commit started.")
            dom.blockCommit(DISK_TARGET, base_path, top_path, 0, 0)
            _block_job_wait(dom, on_progress, should_stop)

    def domain_disk_chain(self, domain_uuid: uuid.UUID) -> list[str]:
        """The files of the running guest's disk as QEMU has them open: its top layer first, then
        each one below."""
        return disk_chain_in(self.domain_xml_of(domain_uuid))

    def volume_rebase(
        self, pool_name: str, name: str, backing_path: str | None, *, should_stop=None
    ) -> VolumeInfo:
        """Put a layer that no guest has open onto another backing file (none: standalone),
        keeping what it shows: what differs between its old chain and the new one is copied into
        it; when the new backing lies in the old chain, that is only what the layers in between
        hold.

        libvirt has no call for this, so `qemu-img rebase` runs here: only for a host whose pool is
        on this machine. QEMU's image locks refuse it while a guest has the file open. Stopped,
        and `Interrupted` raised, as soon as `should_stop()` says so: a rebase cut short has copied
        only what the layer already showed, and its backing file is changed last.
        """
        if not uri_is_local(self.uri):
            raise HypervisorError(f"Layers on {self.uri} can only be merged while their VM runs.")
        with _libvirt_errors():
            path = self._pool(pool_name).storageVolLookupByName(name).path()
        argv = ["qemu-img", "rebase", "-f", "qcow2", "-b", backing_path or ""]
        if backing_path:
            argv += ["-F", "qcow2"]
        with subprocess.Popen(
            [*argv, path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        ) as rebase:
            while rebase.poll() is None:
                if should_stop and should_stop():
                    rebase.terminate()
                    if rebase.wait() != 0:  # not one that ended on its own just now
                        raise Interrupted("The rebase was stopped to give way; nothing changed.")
                with suppress(subprocess.TimeoutExpired):
                    rebase.wait(timeout=0.1)
            errors = rebase.stderr.read()
        if rebase.returncode != 0:
            raise HypervisorError(f"Merging the layer failed: {errors.strip()}")
        self.pool_refresh(pool_name)
        return self.volume_info(pool_name, name)

    def domains(self) -> list[DomainRecord]:
        """Every domain this service defined (recognised by its metadata element)."""
        records = []
        with _libvirt_errors():
            found = self.connection.listAllDomains(0)
        for dom in found:
            try:
                raw = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
                records.append(
                    DomainRecord(
                        uuid=uuid.UUID(dom.UUIDString()),
                        name=dom.name(),
                        active=bool(dom.isActive()),
                        metadata=dict(ET.fromstring(raw).attrib),
                    )
                )
            except libvirt.libvirtError:
                continue  # not ours (no metadata), or undefined while we looked
        return records

    def console_read(self, pool_name: str, name: str, max_bytes: int) -> tuple[bytes, int]:
        """The last `max_bytes` of a guest's console log, and the log's whole size.

        The log lives in the host's console pool (virtlogd writes it there), and is read through the
        storage API, so a console on a remote host reads like a local one. (b"", 0) without a log.
        """
        conn = self.connection
        with _libvirt_errors():
            try:
                pool = self._pool(pool_name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                    return b"", 0  # a host not prepared yet has had no guest
                raise
            try:
                vol = pool.storageVolLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
                _pool_refresh(pool)  # a log virtlogd began since the pool was last read
                try:
                    vol = pool.storageVolLookupByName(name)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                        return b"", 0
                    raise
            _type, _capacity, size = vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)
            offset = max(0, size - max_bytes)
            if size == offset:
                return b"", size
            stream = conn.newStream(0)
            chunks = []
            try:
                vol.download(stream, offset, size - offset, 0)
                while True:
                    data = stream.recv(TRANSFER_CHUNK)
                    if isinstance(data, int) or not data:
                        break
                    chunks.append(data)
                stream.finish()
            except BaseException:
                with suppress(libvirt.libvirtError):
                    stream.abort()
                raise
        return b"".join(chunks), size

    def volumes_delete_prefixed(self, pool_name: str, prefix: str) -> None:
        """Delete every volume whose name starts with `prefix` (a console log and its rotations)."""
        with _libvirt_errors():
            pool = self._pool(pool_name)
            _pool_refresh(pool)
            for vol in pool.listAllVolumes(0):
                if vol.name().startswith(prefix):
                    with suppress(libvirt.libvirtError):
                        vol.delete(0)

    def host_resources(self) -> dict:
        """What the host has: memory in MiB and CPUs (libvirt's node info)."""
        with _libvirt_errors():
            info = self.connection.getInfo()
        return {"memory_mib": int(info[1]), "cpus": int(info[2])}

    def pool_capacity(self, pool_name: str) -> int:
        """The size of the file system under the pool, in bytes."""
        with _libvirt_errors():
            return int(self._pool(pool_name).info()[1])

    def console_send(self, domain_uuid: uuid.UUID, data: bytes) -> None:
        """Type bytes into the guest's serial console."""
        conn = self.connection
        with _libvirt_errors():
            dom = self._domain(domain_uuid)
            if not dom.isActive():
                raise InvalidDomainState("The VM is not running, so its console takes no input.")
            stream = conn.newStream(0)
            dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
            try:
                sent = 0
                while sent < len(data):
                    sent += stream.send(data[sent:])
                time.sleep(CONSOLE_HOLD_SECONDS)
                stream.finish()
            except BaseException:
                stream.abort()
                raise
