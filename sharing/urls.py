from django.urls import path

from sharing import views

urlpatterns = [
    path("snapshots/<uuid:pk>/share/", views.snapshot_share, name="snapshot_share"),
    path(
        "snapshots/<uuid:pk>/share/invitations/",
        views.invitation_create,
        name="invitation_create",
    ),
    path("shares/<uuid:pk>/revoke/", views.share_revoke, name="share_revoke"),
    path("invitations/<uuid:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("shared/", views.shared_list, name="shared_list"),
    path("shared/join/", views.join_with_code, name="share_join_form"),
    path("shared/join/<str:code>/", views.join, name="share_join"),
    path("shared/<uuid:pk>/new-vm/", views.shared_new_vm, name="shared_new_vm"),
]
