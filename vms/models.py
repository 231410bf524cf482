"""Hosts, images, disk layers and VMs.

The database is the source of truth for disk chains: every qcow2 layer in a storage pool has a
`Layer` row naming its parent, and a VM's disk is its active layer on top of that chain.
"""

import random
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.access import OwnedQuerySet
from operations.models import lock_of
from vms.hypervisor import Hypervisor


class VMOperationKind(models.TextChoices):
    """The operations on VMs (registered with `operations.registry` by this app)."""

    CREATE = "vm.create", "Create VM"
    START = "vm.start", "Start VM"
    STOP = "vm.stop", "Stop VM"
    FORCE_STOP = "vm.force_stop", "Force stop VM"
    REBOOT = "vm.reboot", "Reboot VM"
    DELETE = "vm.delete", "Delete VM"
    FLATTEN = "vm.flatten", "Flatten disk"
    MERGE = "vm.merge", "Merge disk layers"
    MOVE = "vm.move", "Move VM to another host"
    REPAIR = "vm.repair", "Repair VM"


class HostState(models.TextChoices):
    ENABLED = "enabled", "Enabled: runs VMs and takes new ones"
    DRAINING = "draining", "Draining: runs its VMs, takes no new ones"
    DISABLED = "disabled", "Disabled: out of service"


class Host(models.Model):
    """A libvirt host that runs guests, with the storage pool that holds their disk layers.

    Every host keeps its pool in the same folder (`pool_path`), so the backing paths written in
    qcow2 headers resolve on whichever host a layer is copied to. Capacity is what placement may
    hand out to VMs (set it above the hardware to overcommit).
    """

    name = models.SlugField(max_length=64, unique=True)
    libvirt_uri = models.CharField(
        max_length=255, help_text="e.g. qemu:///system, qemu+ssh://root@host2/system, qemu+tls://…"
    )
    domain_type = models.CharField(
        max_length=8, choices=[("qemu", "qemu (software)"), ("kvm", "kvm")], default="qemu"
    )
    pool_name = models.CharField(max_length=100)
    pool_path = models.CharField(max_length=255, help_text="Folder of the storage pool.")
    console_dir = models.CharField(max_length=255, help_text="Folder of the guests' console logs.")
    state = models.CharField(max_length=16, choices=HostState.choices, default=HostState.ENABLED)
    memory_mib = models.PositiveIntegerField(
        default=16384, help_text="Memory placement may hand out to VMs, in MiB."
    )
    vcpus = models.PositiveIntegerField(default=32, help_text="vCPUs placement may hand out.")
    disk_gib = models.PositiveIntegerField(
        default=1024, help_text="Disk placement may hand out (VMs' disk sizes), in GiB."
    )
    reachable = models.BooleanField(default=True, help_text="Whether libvirt answered last time.")
    checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        # The URI decides what the service runs and connects to (see `vms.host_uris`).
        from vms.host_uris import libvirt_uri_problem

        problem = libvirt_uri_problem(
            self.libvirt_uri,
            allow_tcp=settings.ALLOW_TCP_HOSTS,
            allow_test=settings.ALLOW_TEST_HOSTS,
        )
        if problem:
            raise ValidationError({"libvirt_uri": problem})

    @property
    def console_pool_name(self) -> str:
        """The storage pool over `console_dir`, through which console logs are read remotely."""
        return f"{self.pool_name}-console"

    @property
    def hypervisor(self) -> Hypervisor:
        """The libvirt adapter for this host (its connection is opened on first use)."""
        return Hypervisor(self.libvirt_uri)


class LayerCopyState(models.TextChoices):
    COPYING = "copying", "Copying"
    READY = "ready", "Ready"


class LayerState(models.TextChoices):
    CREATING = "creating", "Creating"
    READY = "ready", "Ready"
    DELETING = "deleting", "Deleting"


class Layer(models.Model):
    """One qcow2 volume of a disk chain, named by its UUID, with at most one backing layer.

    A layer is needed while a VM writes to it, a snapshot or image is made of it, or another
    layer is built on it; only then may it be freed (see `vms.layers.layer_release`).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="layers")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    depth = models.PositiveIntegerField(default=1, help_text="Layers in the chain, this one too.")
    virtual_size = models.BigIntegerField(help_text="Size of the disk the guest sees, in bytes.")
    allocation = models.BigIntegerField(default=0, help_text="Bytes this layer takes on disk.")
    state = models.CharField(max_length=16, choices=LayerState.choices, default=LayerState.CREATING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self):
        return self.volume_name

    @property
    def volume_name(self) -> str:
        return f"{self.id}.qcow2"


class LayerCopy(models.Model):
    """A copy of a read-only layer in another host's pool, under the same volume name and path,
    so that layers built on it there find it. Made when a VM on that host needs the layer (see
    `vms.layers.layer_chain_seed`); freed together with the layer."""

    layer = models.ForeignKey(Layer, on_delete=models.CASCADE, related_name="copies")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="layer_copies")
    state = models.CharField(
        max_length=16, choices=LayerCopyState.choices, default=LayerCopyState.COPYING
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["layer", "host"], name="one_copy_of_a_layer_per_host")
        ]

    def __str__(self):
        return f"{self.layer_id} on {self.host_id}"


class Image(models.Model):
    """A base image users start VMs from: a kernel, its initrd and a read-only root layer."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # What a person choosing an image reads: the system inside, and what it comes with.
    os_name = models.CharField("operating system", max_length=100, blank=True)
    summary = models.CharField(max_length=200, blank=True)
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="images")
    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, related_name="images")
    kernel_volume = models.CharField(max_length=100)
    initrd_volume = models.CharField(max_length=100)
    cmdline = models.CharField(max_length=255)
    min_disk_bytes = models.BigIntegerField()
    is_public = models.BooleanField(default=True)
    # Its guest takes a new name, MAC and keys while it runs (from its firmware configuration):
    # a VM started from one of its VMs' live snapshots resumes the memory instead of booting.
    live_identity = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def size_bytes(self) -> int:
        """What its root layer takes on its host's disk."""
        return self.layer.allocation


def random_mac() -> str:
    """A locally administered MAC in QEMU's 52:54:00 range."""
    rng = random.SystemRandom()
    return "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


class VMState(models.TextChoices):
    CREATING = "creating", "Creating"
    STOPPED = "stopped", "Stopped"
    RUNNING = "running", "Running"
    DELETING = "deleting", "Deleting"
    ERROR = "error", "Error"
    # Its creation failed: it holds nothing on a host, and waits to be retried or deleted.
    FAILED = "failed", "Failed"


LOCK_PREFIX = "vm:"


def vm_lock(vm_id) -> str:
    """The lock key of a VM's operations (`Operation.lock`): one active operation per VM."""
    return f"{LOCK_PREFIX}{vm_id}"


def vm_id_of_lock(lock: str) -> uuid.UUID | None:
    """The VM an operation's lock names, or None."""
    if not lock.startswith(LOCK_PREFIX):
        return None
    try:
        return uuid.UUID(lock_of(lock).removeprefix(LOCK_PREFIX))
    except ValueError:
        return None


class VMQuerySet(OwnedQuerySet):
    def visible(self):
        """VMs a user sees: everything but those on their way out."""
        return self.exclude(state=VMState.DELETING)

    def owned_by(self, user):
        return self.visible().filter(owner=user)


class VM(models.Model):
    """A user's virtual machine: a libvirt domain whose disk is `active_layer` and its chain."""

    MIN_MEMORY_MIB = 128
    MAX_MEMORY_MIB = 8192
    MAX_VCPUS = 8
    MAX_DISK_BYTES = 256 * 1024**3

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="vms"
    )
    name = models.CharField(max_length=64)
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="vms")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="vms")
    vcpus = models.PositiveSmallIntegerField(default=1)
    memory_mib = models.PositiveIntegerField(default=256)
    disk_bytes = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=VMState.choices, default=VMState.CREATING)
    domain_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    mac_address = models.CharField(max_length=17, default=random_mac, unique=True)
    ip_address = models.GenericIPAddressField(
        protocol="IPv4",
        null=True,
        blank=True,
        unique=True,
        help_text="Its address on the guests' network, given when its domain is first defined.",
    )
    ssh_port = models.PositiveIntegerField(
        null=True,
        blank=True,
        unique=True,
        help_text="The port of the host that reaches its SSH server (SSH_PORTS), kept for life.",
    )
    active_layer = models.ForeignKey(
        Layer, null=True, blank=True, on_delete=models.PROTECT, related_name="active_for"
    )
    source_snapshot = models.ForeignKey(
        "snapshots.Snapshot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="seeded_vms",
        help_text="The snapshot this VM was started from.",
    )
    current_snapshot = models.ForeignKey(
        "snapshots.Snapshot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The snapshot the disk builds on: the last taken, restored or started from.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = VMQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "VM"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="vm_name_unique_per_owner"),
            models.CheckConstraint(
                condition=Q(vcpus__gte=1) & Q(memory_mib__gte=64), name="vm_has_cpu_and_memory"
            ),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        from django.urls import reverse

        return reverse("vm_detail", args=[self.id])

    @property
    def lock(self) -> str:
        """The key its operations hold (one at a time)."""
        return vm_lock(self.pk)


class OrphanSighting(models.Model):
    """Something in libvirt that no row accounts for, and since when: the reconciler removes it
    only after a grace period, so work that is being set up right now is never mistaken for it."""

    class Kind(models.TextChoices):
        DOMAIN = "domain", "Domain"
        VOLUME = "volume", "Volume"

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="orphans")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=255)
    first_seen = models.DateTimeField()

    class Meta:
        db_table = "operations_orphansighting"  # made by the operations app, moved here
        constraints = [
            models.UniqueConstraint(fields=["host", "kind", "name"], name="orphan_sighting_unique")
        ]

    def __str__(self):
        return f"{self.kind} {self.name}"


class ReconcileRun(models.Model):
    """What one run of the reconciler found and did."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    summary = models.TextField()
    problems = models.PositiveIntegerField(default=0, help_text="Findings that needed action.")

    class Meta:
        db_table = "operations_reconcilerun"  # made by the operations app, moved here
        ordering = ["-started_at"]

    def __str__(self):
        return f"Reconcile at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.problems} found)"
