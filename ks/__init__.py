"""`ks`: the service's command-line client. Standard library only, so it installs anywhere; it
speaks to the server through the REST API and imports nothing of the service."""
