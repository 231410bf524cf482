from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app uses: errors users see, the page and API helpers, health, and the
    `bootstrap` and `doctor` commands. It imports no other app of the project."""

    name = "core"
    verbose_name = "Core"
