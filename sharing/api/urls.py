"""The sharing app's API routes, included under /api/ by the project's API urls."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from sharing.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("shared-snapshots", views.SharedSnapshotViewSet, basename="shared-snapshot")

shares = views.SnapshotShareViewSet
invitations = views.SnapshotInvitationViewSet

urlpatterns = [
    path(
        "snapshots/<str:id>/shares/",
        shares.as_view({"get": "list", "post": "create"}),
        name="snapshot-shares",
    ),
    path(
        "snapshots/<str:id>/shares/<str:share_id>/",
        shares.as_view({"delete": "destroy"}),
        name="snapshot-share",
    ),
    path(
        "snapshots/<str:id>/invitations/",
        invitations.as_view({"get": "list", "post": "create"}),
        name="snapshot-invitations",
    ),
    path(
        "snapshots/<str:id>/invitations/<str:invitation_id>/",
        invitations.as_view({"delete": "destroy"}),
        name="snapshot-invitation",
    ),
    path("invitations/redeem/", views.redeem, name="invitation-redeem"),
    *router.urls,
]
