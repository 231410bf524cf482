from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from accounts.bootstrap import admin
        from core import bootstrap

        bootstrap.register(admin, order=20)
