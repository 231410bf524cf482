"""Building the guest image from Debian packages: a Debian kernel with a busybox root file system.

The result is three files: the kernel, its initrd (which loads the virtio drivers and mounts the
root disk) and a qcow2 root disk. The root file system is made from a folder with `mkfs.ext4 -d`,
so nothing is mounted and nothing is downloaded. Inside the guest, busybox `init` brings up a root
shell on the serial console, `acpid` turns the ACPI power button into a clean power-off, the
file system grows to fill the disk on first boot, and `udhcpc` asks the network for an address.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
BOOT = Path("/boot")
MODULES = Path("/lib/modules")
# Kernel modules the guest loads itself; the initrd already brings the virtio disk driver.
# They are loaded in the order of their file names, which is also the order their dependencies
# need (failover, net_failover, then virtio_net).
GUEST_MODULES = (
    "drivers/acpi/button.ko",
    "drivers/input/evdev.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "drivers/firmware/qemu_fw_cfg.ko",  # what the service hands the guest (its identity)
)
ROOT_FS_BYTES = 512 * 1024 * 1024
CMDLINE = "console=ttyS0 root=/dev/vda rw init=/sbin/init quiet"
READY_LINE = "koding-snapshots guest ready"

INITTAB = """\
::sysinit:/etc/init.d/rcS
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
"""

RCS = f"""\
#!/bin/sh
# The initrd hands over /proc, /sys and /dev already mounted; mount what is missing.
grep -q " /proc " /proc/mounts 2>/dev/null || mount -t proc proc /proc
grep -q " /sys " /proc/mounts || mount -t sysfs sysfs /sys
grep -q " /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -o remount,rw /
for arg in $(cat /proc/cmdline); do
  case "$arg" in ks.hostname=*) hostname "${{arg#ks.hostname=}}" ;; esac
done
for module in /lib/modules/guest/*.ko; do insmod "$module" 2>/dev/null; done
# Grow the root file system to the size of the disk the VM was given.
resize2fs /dev/vda >/dev/null 2>&1
acpid -c /etc/acpi
# The network: the first interface that is not loopback, configured by DHCP in the background
# (a guest on a host without a guests' network has none).
ip link set lo up
for nic in $(ls /sys/class/net); do
  [ "$nic" = lo ] && continue
  echo "$nic" > /run/nic
  break
done
/etc/dhcp-start
/etc/identity-watch &
echo "{READY_LINE}: $(hostname)"
"""

DHCP_START = """\
#!/bin/sh
# (Re)start DHCP on the guest's network card, asking under the current host name.
nic="$(cat /run/nic 2>/dev/null)"
[ -n "$nic" ] || exit 0
[ -f /run/udhcpc.pid ] && kill "$(cat /run/udhcpc.pid)" 2>/dev/null
udhcpc -f -i "$nic" -p /run/udhcpc.pid -s /etc/udhcpc.script -T 2 -A 3 \\
  -x "hostname:$(hostname)" >/dev/null 2>&1 &
"""

# A VM forked from a running one resumes with its source's memory: the same host name and, on
# its network card, the same MAC, which the host's filter drops. The service hands each VM its
# identity through QEMU's firmware configuration; a new one is taken as soon as it appears. The
# values are data: each is checked against a pattern and used only as an argument.
IDENTITY_WATCH = f"""\
#!/bin/sh
identity=/sys/firmware/qemu_fw_cfg/by_name/opt/org.koding-snapshots/identity/raw
[ -r "$identity" ] || exit 0
applied="$(cat "$identity")"
while sleep 1; do
  now="$(cat "$identity" 2>/dev/null)" || continue
  [ "$now" = "$applied" ] && continue
  applied="$now"
  name="$(printf '%s\\n' "$now" | sed -n 's/^hostname=\\([a-z0-9-]\\{{1,63\\}}\\)$/\\1/p')"
  mac="$(printf '%s\\n' "$now" | sed -n 's/^mac=\\([0-9a-f:]\\{{17\\}}\\)$/\\1/p')"
  [ -n "$name" ] && hostname "$name"
  nic="$(cat /run/nic 2>/dev/null)"
  if [ -n "$mac" ] && [ -n "$nic" ]; then
    [ -f /run/udhcpc.pid ] && kill "$(cat /run/udhcpc.pid)" 2>/dev/null
    ip link set dev "$nic" down
    ip addr flush dev "$nic"
    ip link set dev "$nic" address "$mac"
    ip link set dev "$nic" up
    /etc/dhcp-start
  fi
  echo "{READY_LINE} as a new VM: $(hostname)" > /dev/ttyS0
done
"""

# busybox udhcpc runs this with the lease in its environment.
UDHCPC_SCRIPT = """\
#!/bin/sh
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
      ip addr flush dev "$interface"
      ip addr add "$ip/${mask:-24}" dev "$interface"
    fi
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    : > /etc/resolv.conf
    for server in $dns; do echo "nameserver $server" >> /etc/resolv.conf; done
    ;;
esac
exit 0
"""

POWER_BUTTON = """\
#!/bin/sh
sync
poweroff
"""

PROFILE = """\
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PS1='\\h:\\w# '
"""


class ImageBuildError(Exception):
    """The guest image could not be built; the message says what is missing."""


@dataclass(frozen=True)
class GuestImageFiles:
    kernel: Path
    initrd: Path
    root_disk: Path
    kernel_version: str
    virtual_size: int


def newest_kernel() -> tuple[Path, Path, str]:
    """The newest Debian kernel in /boot that has an initrd and its modules next to it."""

    def version_key(path: Path) -> list:
        return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", path.name)]

    for kernel in sorted(BOOT.glob("vmlinuz-*"), key=version_key, reverse=True):
        release = kernel.name.removeprefix("vmlinuz-")
        initrd = BOOT / f"initrd.img-{release}"
        if initrd.exists() and (MODULES / release).is_dir():
            return kernel, initrd, release
    raise ImageBuildError(
        "No kernel with an initrd was found in /boot: install Debian's linux-image-cloud-amd64."
    )


def _require_tools() -> None:
    if not BUSYBOX.exists() or "busybox-static" not in _dpkg_owner(BUSYBOX):
        raise ImageBuildError("The guest needs a static busybox: install Debian's busybox-static.")
    for tool in ("mkfs.ext4", "qemu-img", "resize2fs"):
        if _which(tool) is None:
            raise ImageBuildError(f"{tool} is missing: install e2fsprogs and qemu-utils.")


def _dpkg_owner(path: Path) -> str:
    result = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, check=False)
    return result.stdout


def _which(program: str) -> Path | None:
    found = shutil.which(program, path=tool_env()["PATH"])
    return Path(found) if found else None


def _install_program(program: str, root: Path) -> None:
    """Copy a dynamically linked host program and the shared libraries it loads into `root`."""
    binary = _which(program)
    shutil.copy2(binary, root / "bin" / program)
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        match = re.search(r"(/\S+)", line.split("=>")[-1])
        if match:
            library = Path(match.group(1))
            target = root / library.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library, target)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def make_root_folder(root: Path, release: str) -> None:
    """Lay out the guest's root file system in a folder."""
    for folder in ("bin", "dev", "etc/init.d", "proc", "sys", "run", "tmp", "root", "var/log"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for link, target in (("sbin", "bin"), ("usr/bin", "../bin"), ("usr/sbin", "../bin")):
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(target)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (root / "bin" / applet).exists():
            (root / "bin" / applet).symlink_to("busybox")
    _install_program("resize2fs", root)
    modules = root / "lib/modules/guest"
    modules.mkdir(parents=True, exist_ok=True)
    for module in GUEST_MODULES:
        source = MODULES / release / "kernel" / module
        if not source.exists():
            raise ImageBuildError(f"The kernel {release} has no {module}.")
        shutil.copy2(source, modules / source.name)
    write_file(root / "etc/inittab", INITTAB)
    write_file(root / "etc/init.d/rcS", RCS, 0o755)
    write_file(root / "etc/acpi/PWRF/00000080", POWER_BUTTON, 0o755)
    write_file(root / "etc/profile", PROFILE)
    write_file(root / "etc/udhcpc.script", UDHCPC_SCRIPT, 0o755)
    write_file(root / "etc/dhcp-start", DHCP_START, 0o755)
    write_file(root / "etc/identity-watch", IDENTITY_WATCH, 0o755)
    write_file(root / "etc/hostname", "guest\n")
    write_file(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    write_file(root / "etc/group", "root:x:0:\n")
    write_file(root / "etc/fstab", "/dev/vda / ext4 rw 0 1\n")


def build(work_dir: Path) -> GuestImageFiles:
    """Build the guest's kernel, initrd and qcow2 root disk in `work_dir`."""
    _require_tools()
    kernel, initrd, release = newest_kernel()
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp) / "root"
        make_root_folder(root, release)
        raw = Path(tmp) / "root.raw"
        with open(raw, "wb") as handle:
            handle.truncate(ROOT_FS_BYTES)
        run_tool(["mkfs.ext4", "-q", "-F", "-L", "ksroot", "-E", "root_owner=0:0", "-d", root, raw])
        root_disk = work_dir / "root.qcow2"
        run_tool(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, root_disk])
    kernel_copy = work_dir / "vmlinuz"
    initrd_copy = work_dir / "initrd.img"
    shutil.copyfile(kernel, kernel_copy)
    shutil.copyfile(initrd, initrd_copy)
    return GuestImageFiles(
        kernel=kernel_copy,
        initrd=initrd_copy,
        root_disk=root_disk,
        kernel_version=release,
        virtual_size=ROOT_FS_BYTES,
    )


def run_tool(argv: list) -> None:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, env=tool_env()
    )
    if result.returncode != 0:
        raise ImageBuildError(f"{argv[0]} failed: {result.stderr.strip() or result.stdout}")


def tool_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    return env
