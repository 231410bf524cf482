"""Building a Debian 12 (bookworm) guest image from Debian's packages, made personal on boot.

`mmdebstrap` unpacks the packages into a folder with the machine's own apt configuration; a few
files of the service's are written into it; `mkfs.ext4 -d` makes the root file system from that
folder (nothing is mounted) and `qemu-img` turns it into a qcow2 base layer. The kernel and initrd
come from the folder's /boot (the initrd loads the virtio disk driver).

The guest learns who it is from its kernel command line (`vms.jobs.guest_cmdline`):
`ks.hostname=`, `ks.user=` (its owner's account) and `ks.vm=` (the VM's id). A unit of the
image's reads them on every boot, as data only, and checks each against a pattern before use.
When the VM id differs from the one recorded in the guest (the first boot from the image, or a VM
started from another VM's snapshot) the SSH host keys are made anew; the machine-id comes from
`systemd.machine_id=`, one per VM. Data too long for the command line (SSH public keys) can
come the same way through QEMU's fw_cfg: the cloud kernel has the module (qemu_fw_cfg) that shows
its entries under /sys/firmware/qemu_fw_cfg.

A build is kept in a cache folder named for a hash of the recipe: the same recipe is built once.

mmdebstrap's root mode bind-mounts the machine's /dev/shm, /dev/pts, /proc and /sys into the
folder while packages install. It runs in a mount namespace of its own, so those mounts vanish
with it however it ends: a build killed half-way (Ctrl-C of `bin/run`, a dead worker) leaves no
mount of the machine's behind for a later removal of the folder to reach through. Folders are
removed without leaving their file system all the same, and a build's folder left by a killed
build is removed by the next build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from vms.image_build import (
    READY_LINE,
    GuestImageFiles,
    ImageBuildError,
    run_tool,
    tool_env,
    write_file,
)

log = logging.getLogger(__name__)

SUITE = "bookworm"
OS_NAME = "Debian 12 (bookworm)"
SUMMARY = "systemd, OpenSSH, guest agent, sudo, systemd-networkd (DHCP)"
PACKAGES = (
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "qemu-guest-agent",
    "sudo",
    "iproute2",
    "systemd-resolved",
    "ca-certificates",
    "e2fsprogs",
    "passwd",
    "linux-image-cloud-amd64",
)
ROOT_FS_BYTES = 2 * 1024 * 1024 * 1024
CMDLINE = "console=ttyS0 root=/dev/vda rw quiet"
# Units of the service's, enabled in the image; the networkd wait is disabled so that a guest on
# a host without a guests' network does not wait two minutes for one.
ENABLE = (
    "systemd-networkd.service",
    "koding-snapshots-personal.service",
    "koding-snapshots-grow-root.service",
    "koding-snapshots-ready.service",
    "koding-snapshots-identity.service",
)
DISABLE = ("systemd-networkd-wait-online.service",)

PERSONAL_SCRIPT = """\
#!/bin/sh
# Makes this guest the VM the service started, from what the kernel command line says: its host
# name (ks.hostname=), its owner's account (ks.user=) and the VM's id (ks.vm=). The values are
# data: each is checked against a pattern and used only as an argument, never run.
set -u
set -f  # no file-name expansion of the command line's words
state=/var/lib/koding-snapshots
vm="" name="" user=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    ks.vm=*) vm="${arg#ks.vm=}" ;;
    ks.hostname=*) name="${arg#ks.hostname=}" ;;
    ks.user=*) user="${arg#ks.user=}" ;;
  esac
done
set +f
matches() { printf '%s' "$2" | grep -Eqx -- "$1"; }
matches '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' "$vm" || vm=""
matches '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?' "$name" || name=""
matches '[a-z_][a-z0-9_-]{0,31}' "$user" || user=""

if [ -n "$name" ]; then
  printf '%s\\n' "$name" > /etc/hostname
  printf '%s' "$name" > /proc/sys/kernel/hostname
  sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts
  printf '127.0.1.1\\t%s\\n' "$name" >> /etc/hosts
fi

mkdir -p "$state"
recorded="$(cat "$state/vm" 2>/dev/null || true)"
if [ -n "$vm" ] && [ "$vm" != "$recorded" ]; then
  # A new VM (from the image, or from another VM's snapshot): its own SSH host keys.
  rm -f /etc/ssh/ssh_host_*
  printf '%s\\n' "$vm" > "$state/vm"
fi
ssh-keygen -A >/dev/null

# The owner's account, with sudo without a password. A name that is already a system account's
# is left alone; the sudo rule names the current owner only.
rule=/etc/sudoers.d/koding-snapshots-owner
if [ -n "$user" ]; then
  getent passwd "$user" >/dev/null || useradd --create-home --user-group --shell /bin/bash "$user"
  if [ "$(id -u "$user")" -ge 1000 ]; then
    printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\\n' "$user" > "$rule.new"
    chmod 0440 "$rule.new"
    mv "$rule.new" "$rule"
  else
    rm -f "$rule"
  fi
fi

# The owner's SSH public keys, handed over through QEMU's firmware configuration device at each
# boot. Only lines that are a key type and its base64 data are kept: no options, no commands.
seed=/sys/firmware/qemu_fw_cfg/by_name/opt/org.koding-snapshots/authorized_keys/raw
modprobe qemu_fw_cfg 2>/dev/null || true
if [ -n "$user" ] && [ -r "$seed" ] && [ "$(id -u "$user" 2>/dev/null || echo 0)" -ge 1000 ]; then
  home="$(getent passwd "$user" | cut -d: -f6)"
  install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
  keys="$home/.ssh/authorized_keys"
  types='ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)'
  types="$types|sk-ssh-ed25519@openssh[.]com|sk-ecdsa-sha2-nistp256@openssh[.]com"
  head -c 65536 "$seed" | grep -Ex "($types) [A-Za-z0-9+/]+={0,3}" > "$keys.new" || true
  chown "$user:$user" "$keys.new"
  chmod 0600 "$keys.new"
  mv "$keys.new" "$keys"
fi
exit 0
"""

# A VM forked from a running one resumes with its source's memory: its host name, machine-id,
# SSH host keys and, on its network card, its MAC (which the host's filter drops). The service
# hands each VM its identity through QEMU's firmware configuration; this takes a new one as soon
# as it appears. The values are data: each is checked against a pattern, used only as an argument.
IDENTITY_SCRIPT = f"""\
#!/bin/sh
set -u
identity=/sys/firmware/qemu_fw_cfg/by_name/opt/org.koding-snapshots/identity/raw
state=/var/lib/koding-snapshots
modprobe qemu_fw_cfg 2>/dev/null || true
[ -r "$identity" ] || exit 0
value() {{ printf '%s\\n' "$now" | sed -n "s/^$1=//p" | grep -Ex -- "$2" | head -n 1; }}
applied="$(cat "$identity")"
while sleep 1; do
  now="$(cat "$identity" 2>/dev/null)" || continue
  [ "$now" = "$applied" ] && continue
  applied="$now"
  vm="$(value vm '[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}')"
  name="$(value hostname '[a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?')"
  mac="$(value mac '([0-9a-f]{{2}}:){{5}}[0-9a-f]{{2}}')"
  machine="$(value machine_id '[0-9a-f]{{32}}')"
  if [ -n "$name" ]; then
    printf '%s\\n' "$name" > /etc/hostname
    hostname "$name"
    sed -i '/^127\\.0\\.1\\.1[[:space:]]/d' /etc/hosts
    printf '127.0.1.1\\t%s\\n' "$name" >> /etc/hosts
  fi
  [ -n "$machine" ] && printf '%s\\n' "$machine" > /etc/machine-id
  if [ -n "$mac" ]; then
    for nic in $(ls /sys/class/net); do
      case "$nic" in en*|eth*) ;; *) continue ;; esac
      ip link set dev "$nic" down
      ip link set dev "$nic" address "$mac"
      ip link set dev "$nic" up
      break
    done
  fi
  # Its DHCP client identifies itself by the machine-id: asked again, as the new VM.
  systemctl restart systemd-networkd.service
  if [ -n "$vm" ] && [ "$vm" != "$(cat "$state/vm" 2>/dev/null)" ]; then
    # Host keys of its own; the RSA one last (seconds under emulation), sshd restarted at once
    # with the others and again once it is there.
    rm -f /etc/ssh/ssh_host_*
    for type in ed25519 ecdsa; do
      ssh-keygen -q -t "$type" -N "" -f "/etc/ssh/ssh_host_${{type}}_key"
    done
    mkdir -p "$state"
    printf '%s\\n' "$vm" > "$state/vm"
    systemctl try-restart ssh.service
  fi
  echo "{READY_LINE} as a new VM: $(hostname)" > /dev/ttyS0
  if [ ! -e /etc/ssh/ssh_host_rsa_key ]; then
    ssh-keygen -A >/dev/null
    systemctl try-restart ssh.service
  fi
done
"""

IDENTITY_UNIT = """\
[Unit]
Description=Take a new identity when this guest resumes as another VM (a fork)
After=koding-snapshots-personal.service

[Service]
ExecStart=/usr/local/sbin/koding-snapshots-identity
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

PERSONAL_UNIT = """\
[Unit]
Description=Make this guest the VM the service started (host name, owner, SSH host keys)
After=local-fs.target
Before=ssh.service systemd-networkd.service serial-getty@ttyS0.service systemd-logind.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/koding-snapshots-personal

[Install]
WantedBy=multi-user.target
"""

GROW_ROOT_UNIT = """\
[Unit]
Description=Grow the root file system to the VM's disk
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/resize2fs /dev/vda

[Install]
WantedBy=multi-user.target
"""

READY_UNIT = f"""\
[Unit]
Description=Say on the serial console that the guest is up
After=koding-snapshots-personal.service serial-getty@ttyS0.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "{READY_LINE}: $(hostname)" > /dev/ttyS0'

[Install]
WantedBy=multi-user.target
"""

# The serial console is the owner's: the service lets only the VM's owner read and type into it,
# as it does the busybox image's root shell. So it logs in as root without a password, which is
# the same trust, not more; SSH keeps asking for keys.
SERIAL_AUTOLOGIN = """\
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 - $TERM
"""

# Whatever the network card is called (enp0s2 on q35, ens3 on pc, eth0 elsewhere).
NETWORK = """\
[Match]
Name=en* eth*

[Network]
DHCP=yes
"""

FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

FILES = {
    "usr/local/sbin/koding-snapshots-personal": (PERSONAL_SCRIPT, 0o755),
    "etc/systemd/system/koding-snapshots-personal.service": (PERSONAL_UNIT, 0o644),
    "etc/systemd/system/koding-snapshots-grow-root.service": (GROW_ROOT_UNIT, 0o644),
    "etc/systemd/system/koding-snapshots-ready.service": (READY_UNIT, 0o644),
    "usr/local/sbin/koding-snapshots-identity": (IDENTITY_SCRIPT, 0o755),
    "etc/systemd/system/koding-snapshots-identity.service": (IDENTITY_UNIT, 0o644),
    "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf": (SERIAL_AUTOLOGIN, 0o644),
    "etc/systemd/network/20-wired.network": (NETWORK, 0o644),
    "etc/fstab": (FSTAB, 0o644),
    "etc/hosts": (HOSTS, 0o644),
    "etc/hostname": ("debian\n", 0o644),
}

BUILD_INFO = "build.json"


def recipe_key() -> str:
    """A hash of the recipe: this module (the packages, the files written, the steps) and the
    machine's apt sources, not the packages' versions of the day."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for source in apt_sources():
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def apt_sources() -> list[Path]:
    """The machine's own apt sources (a sources.list and the files of sources.list.d), which
    the image is unpacked from and keeps; mmdebstrap's own default is deb.debian.org."""
    etc = Path("/etc/apt")
    found = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    found += sorted(
        path
        for path in (etc / "sources.list.d").glob("*")
        if path.suffix in (".list", ".sources") and path.is_file()
    )
    return [path for path in found if path.read_text().strip()]


def _files_in(folder: Path, info: dict) -> GuestImageFiles:
    return GuestImageFiles(
        kernel=folder / "vmlinuz",
        initrd=folder / "initrd.img",
        root_disk=folder / "root.qcow2",
        kernel_version=info["kernel_version"],
        virtual_size=info["virtual_size"],
    )


def cached(cache_dir: Path, key: str | None = None) -> tuple[GuestImageFiles, dict] | None:
    """The image built from the recipe `key` (the current one by default), if it is in
    `cache_dir`, with what its build recorded (`seconds`, `kernel_version`)."""
    folder = cache_dir / f"debian-12-{key or recipe_key()}"
    try:
        info = json.loads((folder / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return None
    return _files_in(folder, info), info


def build_cached(cache_dir: Path) -> tuple[GuestImageFiles, dict]:
    """The image of the current recipe: from `cache_dir` when built before, else built there.
    Returns its files and what its build recorded (`seconds`, `kernel_version`, `cached`)."""
    key = recipe_key()
    found = cached(cache_dir, key)
    if found:
        files, info = found
        return files, {**info, "cached": True}
    cache_dir.mkdir(parents=True, exist_ok=True)
    sweep_stale_builds(cache_dir)
    # Built beside its final place and renamed into it, so that two builds at once (two test
    # runs) never leave a half-made image under the final name.
    with building_folder(cache_dir) as tmp:
        started = time.monotonic()
        files = build(tmp / "out")
        info = {
            "kernel_version": files.kernel_version,
            "virtual_size": files.virtual_size,
            "seconds": round(time.monotonic() - started, 1),
        }
        (tmp / "out" / BUILD_INFO).write_text(json.dumps(info))
        try:
            os.rename(tmp / "out", cache_dir / f"debian-12-{key}")
        except OSError:
            if cached(cache_dir, key) is None:  # not another build finishing first
                raise
    files, info = cached(cache_dir, key)
    return files, {**info, "cached": False}


BUILDING_PREFIX = ".building-"
# A build's folder younger than this is never taken for a dead build's, even before its lock.
STALE_AFTER_SECONDS = 60


@contextlib.contextmanager
def building_folder(cache_dir: Path):
    """A folder in `cache_dir` for one build, locked while the build runs (so that another
    build can tell it from a dead one's) and removed afterwards, whatever the build's end."""
    folder = Path(tempfile.mkdtemp(prefix=BUILDING_PREFIX, dir=cache_dir))
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield folder
    finally:
        try:
            remove_tree(folder)
        finally:
            os.close(handle)


def sweep_stale_builds(cache_dir: Path) -> list[Path]:
    """Remove the folders of builds that died (killed before they could clean up): those no
    build holds locked, and older than a minute. Returns what was removed."""
    removed = []
    for folder in sorted(cache_dir.glob(BUILDING_PREFIX + "*")):
        try:
            if time.time() - folder.lstat().st_mtime < STALE_AFTER_SECONDS:
                continue
            handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a build under way
        else:
            remove_tree(folder)
            removed.append(folder)
            log.info("Removed a dead build's folder %s", folder)
        finally:
            os.close(handle)
    return removed


def mounts_under(path: Path) -> list[Path]:
    """The mount points at or below `path` in this process's mount namespace, deepest first."""
    root = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            # The fifth field is the mount point (space, tab, newline, backslash octal-escaped).
            point = line.split()[4]
            point = point.encode().decode("unicode_escape").encode("latin-1").decode()
            if point == root or point.startswith(root.rstrip("/") + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """Remove a build's folder without ever reaching outside its own file system: a mount left
    inside it (by an older build killed half-way) is detached first, never emptied, and the
    removal does not descend into another file system in any case."""
    if not os.path.lexists(path):
        return
    for point in mounts_under(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    if mounts_under(path):
        log.warning("Left %s in place: something is still mounted inside it", path)
        return
    result = subprocess.run(
        ["rm", "-rf", "--one-file-system", "--", path], capture_output=True, text=True
    )
    if result.returncode != 0:
        log.warning("Could not remove all of %s: %s", path, result.stderr.strip())


def _require_tools() -> None:
    for tool in ("mmdebstrap", "mkfs.ext4", "qemu-img", "unshare"):
        if shutil.which(tool, path=tool_env()["PATH"]) is None:
            raise ImageBuildError(
                f"{tool} is missing: install mmdebstrap, e2fsprogs, qemu-utils and util-linux."
            )
    if os.geteuid() != 0:
        raise ImageBuildError("Building the Debian image needs root (mmdebstrap's root mode).")


def make_root_folder(root: Path) -> str:
    """Unpack Debian into `root` and add the service's files; returns the kernel's release."""
    sources = apt_sources()
    if not sources:
        raise ImageBuildError("This machine has no apt sources to unpack Debian from.")
    # Each file is pasted into the image's apt sources as it is (one-line or deb822 style).
    # In a mount namespace of its own: its bind mounts of the machine's /dev/shm, /proc and /sys
    # go with it, even when it is killed before it can undo them.
    run_tool(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "mmdebstrap",
            "--quiet",
            "--variant=apt",
            "--include=" + ",".join(PACKAGES),
            SUITE,
            root,
            *sources,
        ]
    )
    for path, (text, mode) in FILES.items():
        write_file(root / path, text, mode)
    # Every VM makes its own SSH host keys and machine-id on its first boot.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # The tree's own systemctl, which knows it is not running the system it edits.
    run_tool(["chroot", root, "systemctl", "enable", "--quiet", *ENABLE])
    run_tool(["chroot", root, "systemctl", "disable", "--quiet", *DISABLE])
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageBuildError("The Debian tree has no kernel in /boot.")
    return kernels[-1].name.removeprefix("vmlinuz-")


def build(work_dir: Path) -> GuestImageFiles:
    """Build the Debian guest's kernel, initrd and qcow2 root disk in `work_dir`."""
    _require_tools()
    work_dir.mkdir(parents=True, exist_ok=True)
    with building_folder(work_dir) as tmp:
        root = tmp / "root"
        release = make_root_folder(root)
        initrd = root / "boot" / f"initrd.img-{release}"
        if not initrd.exists():
            raise ImageBuildError(f"The Debian tree has no initrd for its kernel {release}.")
        shutil.copyfile(root / "boot" / f"vmlinuz-{release}", work_dir / "vmlinuz")
        shutil.copyfile(initrd, work_dir / "initrd.img")
        raw = tmp / "root.raw"
        with open(raw, "wb") as handle:
            handle.truncate(ROOT_FS_BYTES)
        run_tool(["mkfs.ext4", "-q", "-F", "-L", "ksroot", "-d", root, raw])
        run_tool(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, work_dir / "root.qcow2"])
    return _files_in(work_dir, {"kernel_version": release, "virtual_size": ROOT_FS_BYTES})
