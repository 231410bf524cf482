"""API: the SSH keys that may log in to your VMs. Another user's key is the same 404 as a
missing one."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from accounts.api.serializers import SshKeyCreateSerializer, SshKeySerializer
from accounts.models import SshKey
from accounts.selectors import ssh_keys_of
from accounts.services import ssh_key_add, ssh_key_delete
from core.access import get_owned_or_404
from core.api.schema import ERRORS_LIST, ERRORS_READ, IdSchema, error

ERRORS_ADD = {
    **ERRORS_READ,
    400: error("The key or the title is refused; `fields` says which and why."),
    403: error("You keep as many SSH keys as one account may (SSH_KEYS_MAX)."),
    409: error("You have already added this key."),
    429: error("Too many changes in a short time; retry later."),
}


@extend_schema_view(
    list=extend_schema(
        description="Your SSH keys, newest first.",
        responses={200: SshKeySerializer(many=True), **ERRORS_LIST},
    ),
    retrieve=extend_schema(
        description="One of your SSH keys.", responses={200: SshKeySerializer, **ERRORS_READ}
    ),
)
class SshKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your SSH public keys: VMs you create let them in."""

    serializer_class = SshKeySerializer
    lookup_value_regex = "[^/]+"
    schema = IdSchema()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return SshKey.objects.none()
        return ssh_keys_of(self.request.user)

    def get_object(self):
        return get_owned_or_404(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(request=SshKeyCreateSerializer, responses={201: SshKeySerializer, **ERRORS_ADD})
    def create(self, request):
        """Add a public key; its type, size and data are checked, its fingerprint computed."""
        serializer = SshKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = ssh_key_add(owner=request.user, **serializer.validated_data)
        return Response(SshKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={204: None, **ERRORS_READ, 429: ERRORS_ADD[429]},
    )
    def destroy(self, request, pk=None):
        """Delete a key: VMs created from now on no longer let it in."""
        ssh_key_delete(key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
