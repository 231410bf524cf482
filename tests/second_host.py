"""A second libvirt host on this same machine, for tests that need two hosts.

The second host is an unprivileged session-mode libvirtd that listens on qemu+tcp on 127.0.0.1.
It runs in a mount namespace of its own, in which one folder (`shadow_dir`) is replaced by a
private folder: the service keeps storage pool paths the same on every host (qcow2 headers name
their backing files by absolute path), so both hosts must see the same path but different files.
The QEMU guests and the virtlogd it starts inherit the namespace, so they see its files too.

It runs as `nobody`/`nogroup`, which every Debian system has: no account to create, and it owns
nothing outside the daemon's own folders (mode 0700, in a private temp folder; another service
that also runs as nobody could read them, which is fine for tests). Starting it needs root (the
bind mount, the change of user); it is meant for the root test runs, which use qemu:///system
as the first host.

    with second_host.running(shadow_dir) as host:
        libvirt.open(host.uri)      # qemu+tcp://127.0.0.1:<port>/session
        host.private_dir            # what shadow_dir shows inside, seen from outside
        host.stop(); host.start()   # the host goes down (guests too) and comes back
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt

USER = "nobody"
GROUP = "nogroup"
START_TIMEOUT = 20.0
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# The daemon's own folders, inside its private temp folder. The names are short on purpose: the
# guests' UNIX sockets live under XDG_CONFIG_HOME (e.g. .../libvirt/qemu/channel/target/
# domain-1-ks-<uuid>/org.qemu.guest_agent.0) and a socket path must fit in 108 bytes.
XDG_DIRS = {
    "HOME": "home",
    "XDG_CONFIG_HOME": "cfg",
    "XDG_CACHE_HOME": "cache",
    "XDG_DATA_HOME": "data",
    "XDG_RUNTIME_DIR": "run",
}


class SecondHostError(Exception):
    """The second libvirtd did not come up; the message carries its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_traversable(path: Path) -> None:
    """Let any user pass through the folders above `path`: add o+x where it is missing."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def mount_namespace(pid: int) -> str | None:
    """The mount namespace of a process, as "mnt:[inode]"; None once it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def namespace_pids(namespace: str, uid: int) -> list[int]:
    """The processes of user `uid` in mount namespace `namespace`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if entry.stat().st_uid == uid and mount_namespace(pid) == namespace:
                found.append(pid)
        except OSError:
            continue  # gone meanwhile
    return found


def port_free(port: int) -> bool:
    """Whether a daemon could listen on 127.0.0.1:`port` now (as libvirtd does: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def libvirtd_conf(port: int, host_uuid: str) -> str:
    # auth_tcp "none": anyone on this machine may use the daemon; fine for tests, never for real.
    return (
        "listen_tls = 0\n"
        "listen_tcp = 1\n"
        'listen_addr = "127.0.0.1"\n'
        f'tcp_port = "{port}"\n'
        'auth_tcp = "none"\n'
        f'host_uuid = "{host_uuid}"\n'
    )


class SecondHost:
    """An unprivileged libvirtd at `uri`, whose `shadow_dir` is `private_dir` seen from outside.

    `stop()` kills the daemon and everything it started (its virtlogd, its guests), as a host
    that loses power; `start()` brings it back with the same port, UUID and files. `close()`
    stops it and deletes its folders.
    """

    def __init__(self, shadow_dir: Path | str, *, user: str = USER, group: str = GROUP):
        self.shadow_dir = Path(shadow_dir)
        if not self.shadow_dir.is_absolute():
            raise ValueError(f"shadow_dir must be an absolute path: {shadow_dir}")
        self.uid = pwd.getpwnam(user).pw_uid
        self.gid = grp.getgrnam(group).gr_gid
        self.port = free_port()
        self.host_uuid = str(uuid.uuid4())
        self.base = Path(tempfile.mkdtemp(prefix="ks2h-", dir="/tmp"))  # short: see XDG_DIRS
        self.base.chmod(0o711)  # the daemon's user passes through to its own folders
        self.conf = self.base / "libvirtd.conf"
        self.conf.write_text(libvirtd_conf(self.port, self.host_uuid))
        self.conf.chmod(0o644)
        self.log_path = self.base / "libvirtd.log"
        for folder in [*XDG_DIRS.values(), "shadow"]:
            self._own_dir(self.base / folder)
        self.shadow_dir.mkdir(parents=True, exist_ok=True)
        make_traversable(self.shadow_dir)
        self.process: subprocess.Popen | None = None
        self.namespace: str | None = None

    @property
    def uri(self) -> str:
        return f"qemu+tcp://127.0.0.1:{self.port}/session"

    @property
    def hypervisor(self):
        """The libvirt adapter for this host, as `Host.hypervisor` gives it for a host row."""
        from vms.hypervisor import Hypervisor

        return Hypervisor(self.uri)

    @property
    def private_dir(self) -> Path:
        """What `shadow_dir` shows inside the host's namespace, as seen from outside."""
        return self.base / "shadow"

    def outside(self, path: Path | str) -> Path:
        """Where a path under `shadow_dir`, as the second host sees it, is from outside."""
        return self.private_dir / Path(path).relative_to(self.shadow_dir)

    def mkdir(self, path: Path | str) -> Path:
        """Make a folder under `shadow_dir` on the second host, owned by the daemon's user (e.g.
        for console logs, which its virtlogd writes). Returns the path as seen from outside."""
        relative = Path(path).relative_to(self.shadow_dir) if Path(path).is_absolute() else path
        folder = self.private_dir
        for part in Path(relative).parts:
            folder = folder / part
            self._own_dir(folder)
        return folder

    def _own_dir(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, self.uid, self.gid)

    def _command(self) -> list[str]:
        env = [f"{name}={self.base / folder}" for name, folder in XDG_DIRS.items()]
        inner = [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "env",
            "-i",
            *env,
            f"PATH={PATH}",
            "LANG=C.UTF-8",
            "libvirtd",
            "--listen",
            "-f",
            str(self.conf),
        ]
        script = (
            f"mount --bind {shlex.quote(str(self.private_dir))} {shlex.quote(str(self.shadow_dir))}"
            f" && exec {shlex.join(inner)}"
        )
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the daemon and wait until it answers at `uri`."""
        if self.running():
            return
        # Otherwise whatever listens there could answer in its place.
        if not port_free(self.port):
            raise SecondHostError(f"port {self.port} of the second libvirtd is taken")
        with open(self.log_path, "ab") as log:
            # A session of its own: stop() can kill the whole process group.
            self.process = subprocess.Popen(
                self._command(),
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise SecondHostError(f"libvirtd exited at start:\n{self.log()}")
            with contextlib.suppress(libvirt.libvirtError):
                libvirt.open(self.uri).close()
                break
            if time.monotonic() > deadline:
                self.stop()
                raise SecondHostError(f"libvirtd did not answer in {timeout} s:\n{self.log()}")
            time.sleep(0.1)
        namespace = mount_namespace(self.process.pid)
        if namespace is None or namespace == mount_namespace(os.getpid()):
            self.stop()
            raise SecondHostError("libvirtd does not run in a mount namespace of its own")
        self.namespace = namespace

    def stop(self, timeout: float = 10.0) -> None:
        """Kill the daemon and everything in its namespace (its virtlogd and guests, which
        daemonize into sessions of their own); afterwards `uri` refuses connections."""
        if self.process is None:
            return
        namespace = self.namespace or mount_namespace(self.process.pid)
        if namespace == mount_namespace(os.getpid()):
            namespace = None  # still starting up (not yet unshared): never touch our own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while namespace:
            left = namespace_pids(namespace, self.uid)
            if not left:
                break
            if time.monotonic() > deadline:
                raise SecondHostError(f"processes of the second host survive SIGKILL: {left}")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        self.process.wait(timeout=timeout)
        self.process = None
        self.namespace = None

    def close(self) -> None:
        """Stop the daemon and delete its folders (the files its user made too)."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""


def start(shadow_dir: Path | str, **kwargs) -> SecondHost:
    """A started second host shadowing `shadow_dir` (see `SecondHost`); close() it after use."""
    host = SecondHost(shadow_dir, **kwargs)
    try:
        host.start()
    except BaseException:
        host.close()
        raise
    return host


@contextlib.contextmanager
def running(shadow_dir: Path | str, **kwargs) -> Iterator[SecondHost]:
    """A second host for the duration of the block; stopped and deleted afterwards."""
    host = start(shadow_dir, **kwargs)
    try:
        yield host
    finally:
        host.close()
