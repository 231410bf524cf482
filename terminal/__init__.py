"""The terminal: a VM's serial console in the browser, live both ways, over a WebSocket served
by the ASGI side of the project (`koding_snapshots.asgi`, run by bin/run as its own process)."""
