from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from core.api.common import CONTROL_BUT_TAB, NameField, TextField
from operations.models import HOUSEKEEPING_SUFFIX, Operation, lock_of
from vms.models import VM, Image
from vms.services import CONSOLE_LINE_MAX, GIB, NAME_MAX

IMAGES_LIST = "/api/images/"
IMAGE_SLUG_MAX = 64
IMAGE_SLUG_HELP = f"An image's slug; see GET {IMAGES_LIST}."


class ImageSerializer(serializers.ModelSerializer):
    min_disk_gib = serializers.SerializerMethodField()
    size_bytes = serializers.IntegerField(
        read_only=True, help_text="What the image's root layer takes on disk."
    )

    class Meta:
        model = Image
        fields = [
            "slug",
            "name",
            "os_name",
            "summary",
            "description",
            "size_bytes",
            "min_disk_gib",
            "live_identity",
            "created_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "live_identity": {
                "help_text": "Its guests take a new name, MAC and keys while running: a VM of "
                "this image can be forked, and a new VM from one of its live snapshots resumes."
            }
        }

    def get_min_disk_gib(self, image) -> int:
        return -(-image.min_disk_bytes // GIB)


class VMSerializer(serializers.ModelSerializer):
    image = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text=IMAGE_SLUG_HELP
    )
    disk_gib = serializers.SerializerMethodField()
    current_snapshot = serializers.UUIDField(
        source="current_snapshot_id", read_only=True, allow_null=True
    )
    source_snapshot = serializers.UUIDField(
        source="source_snapshot_id", read_only=True, allow_null=True
    )
    host = serializers.CharField(source="host.name", read_only=True)
    host_reachable = serializers.BooleanField(
        source="host.reachable",
        read_only=True,
        help_text="False while the VM's host does not answer: its console and actions fail.",
    )
    housekeeping = serializers.SerializerMethodField(
        help_text=(
            "What the service is tidying up on the VM's disk on its own (e.g. \"merge disk "
            'layers"), or null. It never makes the VM busy: an action asked for now is accepted '
            "and runs as soon as the housekeeping gives way, within seconds."
        )
    )

    ip_address = serializers.IPAddressField(
        read_only=True, allow_null=True, help_text="Its address on the guests' network."
    )
    guest = serializers.SerializerMethodField(
        help_text="What its guest agent says while it runs (os_name, hostname, addresses, "
        "uptime_seconds), or null without an agent answering; in a VM's own answer only, "
        "null in lists."
    )
    ssh = serializers.SerializerMethodField(
        help_text="The command that reaches its SSH server from anywhere: its host forwards "
        '`ssh_port` to it while it runs ("" when ports are not published for it).'
    )

    class Meta:
        model = VM
        fields = [
            "id",
            "name",
            "state",
            "image",
            "vcpus",
            "memory_mib",
            "disk_gib",
            "mac_address",
            "ip_address",
            "ssh_port",
            "ssh",
            "guest",
            "current_snapshot",
            "source_snapshot",
            "host",
            "host_reachable",
            "housekeeping",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_guest(self, vm) -> dict | None:
        from vms.services import guest_info

        view = self.context.get("view")
        if getattr(view, "action", None) != "retrieve":
            return None  # asked of one VM at a time: a list does not wait on agents
        info = guest_info(vm)
        if info is None:
            return None
        return {
            "os_name": info.os_name,
            "hostname": info.hostname,
            "addresses": list(info.addresses),
            "uptime_seconds": info.uptime_seconds,
        }

    def get_ssh(self, vm) -> str:
        from django.http.request import split_domain_port

        from vms.publishing import ssh_command

        request = self.context.get("request")
        host = split_domain_port(request.get_host())[0] if request else "localhost"
        return ssh_command(vm, host)

    def get_disk_gib(self, vm) -> float:
        return round(vm.disk_bytes / GIB, 2)

    def get_housekeeping(self, vm) -> str | None:
        # One query per response: the few housekeeping operations active for the VMs' owner.
        if "housekeeping" not in self.context:
            active = Operation.objects.active().filter(
                owner_id=vm.owner_id, lock__endswith=HOUSEKEEPING_SUFFIX
            )
            self.context["housekeeping"] = {
                lock_of(op.lock): op.get_kind_display().lower() for op in active
            }
        return self.context["housekeeping"].get(vm.lock)


class ImageSlugField(serializers.SlugField):
    """The slug of an image offered for new VMs. Images are rows an admin adds, so the schema
    gives the slug's shape and points at the list; it never lists them, and so reads the same
    whatever the database holds."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", IMAGE_SLUG_HELP)
        super().__init__(max_length=IMAGE_SLUG_MAX, **kwargs)

    def run_validation(self, data=serializers.empty):
        # After the slug's own checks (its length and shape), which look at the text.
        slug = super().run_validation(data)
        image = Image.objects.filter(slug=slug, is_public=True).select_related("host").first()
        if image is None:
            raise serializers.ValidationError(
                f"There is no image {slug!r}; GET {IMAGES_LIST} lists the images offered."
            )
        return image


class ImageSlugFieldSchema(OpenApiSerializerFieldExtension):
    target_class = ImageSlugField

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "pattern": r"^[-a-zA-Z0-9_]+$",
            "maxLength": IMAGE_SLUG_MAX,
            "description": self.target.help_text,
        }


class VMCreateSerializer(serializers.Serializer):
    name = NameField(max_length=NAME_MAX)
    image = ImageSlugField()
    vcpus = serializers.IntegerField(default=1, min_value=1, max_value=VM.MAX_VCPUS)
    memory_mib = serializers.IntegerField(
        default=256, min_value=VM.MIN_MEMORY_MIB, max_value=VM.MAX_MEMORY_MIB
    )
    disk_gib = serializers.IntegerField(default=4, min_value=1, max_value=VM.MAX_DISK_BYTES // GIB)


class VMUpdateSerializer(serializers.Serializer):
    name = NameField(max_length=NAME_MAX, required=False)


class VMStopSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False, help_text="Pull the plug instead of pressing the power button."
    )


class VMForkSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        default=1,
        min_value=1,
        max_value=10,
        help_text="How many new VMs resume from the fork's snapshot (1 to 10).",
    )


class ConsoleOutputSerializer(serializers.Serializer):
    output = serializers.CharField(help_text="The last of what the guest printed.")


class ConsoleInputSerializer(serializers.Serializer):
    line = TextField(
        max_length=CONSOLE_LINE_MAX,
        forbid=CONTROL_BUT_TAB,
        allow_blank=True,
        trim_whitespace=False,
        help_text="One line; a tab is the only control character it may hold.",
    )


class ConsoleSentSerializer(serializers.Serializer):
    detail = serializers.CharField()
