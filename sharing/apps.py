from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "sharing"
    verbose_name = "Sharing"

    def ready(self):
        from snapshots import page_links

        page_links.register(row=page_links.Link("Share", "snapshot_share"))
        # With SIGNUP=invitation, an invitation code is what lets a newcomer sign up.
        from accounts.signup import invitations_register
        from sharing import services, views

        invitations_register(
            check=services.invitation_find,
            redeem=lambda code, user: services.invitation_redeem(code=code, user=user),
            code_in=views.invitation_code_of_link,
        )
