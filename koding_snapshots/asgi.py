"""ASGI entry point: the whole site, and the terminal's WebSocket (`terminal.asgi`).

bin/run serves the pages with gunicorn (WSGI) and runs this under uvicorn on TERMINAL_PORT for
the terminal; served alone it is the whole site, terminal included.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koding_snapshots.settings")

django_application = get_asgi_application()

from terminal.asgi import terminal_websocket  # noqa: E402  (needs the settings configured)


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        return await terminal_websocket(scope, receive, send)
    return await django_application(scope, receive, send)
