"""API: a snapshot's shares and invitations (its owner's), redeeming a code, and the snapshots
shared with you, from which you can start VMs.

Another user's snapshot, share or invitation is the same 404 as a missing one; so is a snapshot
no longer shared with you.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.response import Response

from core.access import get_owned_or_404
from core.api.errors import error_body
from core.api.schema import ERRORS_LIST, ERRORS_READ, ERRORS_WRITE, IdSchema, error
from operations.api.idempotency import idempotent, key_of
from operations.api.responses import accepted
from operations.api.serializers import OperationSerializer
from sharing import selectors, services
from sharing.api.serializers import (
    InvitationCreateSerializer,
    InvitationSerializer,
    RedeemSerializer,
    ShareCreateSerializer,
    SharedSnapshotSerializer,
    ShareSerializer,
)
from sharing.models import Invitation, Share
from snapshots.api.serializers import SnapshotNewVMSerializer
from snapshots.models import Snapshot


class SharingSchema(IdSchema):
    """The ids in these paths are UUIDs, the snapshot's and the share's or invitation's."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        for name in ("share_id", "invitation_id"):
            if f"{{{name}}}" in self.path:
                parameters.append(
                    OpenApiParameter(
                        name, OpenApiTypes.UUID, OpenApiParameter.PATH, description="Its `id`."
                    )
                )
        return parameters


class _OwnedSnapshotChildren(viewsets.GenericViewSet):
    schema = SharingSchema()

    def snapshot(self) -> Snapshot:
        return get_owned_or_404(Snapshot.objects.owned_by(self.request.user), self.kwargs["id"])


@extend_schema_view(
    list=extend_schema(responses={200: ShareSerializer(many=True), **ERRORS_LIST}),
    create=extend_schema(
        request=ShareCreateSerializer, responses={201: ShareSerializer, **ERRORS_WRITE}
    ),
    destroy=extend_schema(request=None, responses={204: None, **ERRORS_WRITE}),
)
class SnapshotShareViewSet(_OwnedSnapshotChildren):
    """The users your snapshot is shared with: they may start VMs from it, nothing else."""

    serializer_class = ShareSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return Share.objects.none()
        return selectors.shares_of(self.snapshot())

    def list(self, request, id=None):
        """The snapshot's shares in force, newest first."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ShareSerializer(page, many=True).data)

    def create(self, request, id=None):
        """Share the snapshot with a user, by username (again: the same share)."""
        snapshot = self.snapshot()
        serializer = ShareCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        share = services.share_create(
            snapshot=snapshot, username=serializer.validated_data["username"]
        )
        return Response(ShareSerializer(share).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, id=None, share_id=None):
        """Revoke a share: no new VMs for its user; the VMs they started keep running."""
        share = get_owned_or_404(self.get_queryset(), share_id)
        services.share_revoke(share=share)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(responses={200: InvitationSerializer(many=True), **ERRORS_LIST}),
    create=extend_schema(
        request=InvitationCreateSerializer, responses={201: InvitationSerializer, **ERRORS_WRITE}
    ),
    destroy=extend_schema(request=None, responses={204: None, **ERRORS_WRITE}),
)
class SnapshotInvitationViewSet(_OwnedSnapshotChildren):
    """Invitation codes to your snapshot: each user who redeems one gets a share."""

    serializer_class = InvitationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        return selectors.invitations_of(self.snapshot())

    def list(self, request, id=None):
        """The snapshot's invitations not revoked (expired and used-up ones too)."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(InvitationSerializer(page, many=True).data)

    def create(self, request, id=None):
        """A new invitation code, optionally for at most `max_uses` users, until `expires_at`."""
        snapshot = self.snapshot()
        serializer = InvitationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_create(snapshot=snapshot, **serializer.validated_data)
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, id=None, invitation_id=None):
        """Revoke an invitation: its code stops working and the shares made with it end."""
        invitation = get_owned_or_404(self.get_queryset(), invitation_id)
        services.invitation_revoke(invitation=invitation)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    request=RedeemSerializer,
    responses={
        200: SharedSnapshotSerializer,
        **ERRORS_WRITE,
        404: error("No invitation in force has this code; the message says what to do."),
        409: error("The invitation has expired or is used up, or your share was revoked."),
    },
)
@api_view(["POST"])
def redeem(request):
    """Redeem an invitation code: the snapshot is shared with you (again: the same share)."""
    serializer = RedeemSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        share = services.invitation_redeem(
            code=serializer.validated_data["code"], user=request.user
        )
    except services.UnknownInvitation as exc:
        return Response(error_body("not_found", exc.message), status=status.HTTP_404_NOT_FOUND)
    snapshot = get_owned_or_404(selectors.shared_with(request.user), share.snapshot_id)
    return Response(SharedSnapshotSerializer(snapshot).data)


@extend_schema_view(
    list=extend_schema(responses={200: SharedSnapshotSerializer(many=True), **ERRORS_LIST}),
    retrieve=extend_schema(responses={200: SharedSnapshotSerializer, **ERRORS_READ}),
)
class SharedSnapshotViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Snapshots other users share with you: you may start VMs of your own from them."""

    serializer_class = SharedSnapshotSerializer
    lookup_value_regex = "[^/]+"
    schema = IdSchema()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Snapshot.objects.none()
        return selectors.shared_with(self.request.user)

    def get_object(self):
        return get_owned_or_404(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(
        request=SnapshotNewVMSerializer, responses={202: OperationSerializer, **ERRORS_WRITE}
    )
    @action(detail=True, methods=["post"], url_path="vms")
    @idempotent
    def new_vm(self, request, pk=None):
        """Start a VM of your own from the snapshot (your plan's VM limit applies)."""
        snapshot = self.get_object()
        serializer = SnapshotNewVMSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operation = services.shared_new_vm(
            snapshot=snapshot,
            user=request.user,
            idempotency_key=key_of(request),
            **serializer.validated_data,
        )
        return accepted(operation, request)
