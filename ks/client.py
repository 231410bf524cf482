"""The REST API over HTTP: one `Api` per invocation, errors as `ApiError` with the server's
sentence and the exit code a script can rely on."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator

# Exit codes, documented in `ks --help`.
OK = 0
FAILED = 1
USAGE = 2
NOT_FOUND = 3
REFUSED = 4
SERVER = 5

PAGE_SIZE = 100
TIMEOUT = 60
# A POST that never got an answer is sent again with the same Idempotency-Key: safe, the
# server answers a repeated key with the first answer.
RETRIES = 2


class ApiError(Exception):
    """A request the server refused or could not answer; `exit_code` says which."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _error_message(status: int, raw: bytes) -> str:
    try:
        error = json.loads(raw)["error"]
        message = error["message"]
    except (ValueError, KeyError, TypeError):
        return f"The server answered {status}."
    for field, problems in (error.get("fields") or {}).items():
        if field != "non_field_errors" or problems != [message]:
            message += f"\n  {field}: {' '.join(problems)}"
    return message


def _exit_code(status: int) -> int:
    if status == 404:
        return NOT_FOUND
    if 400 <= status < 500:
        return REFUSED
    return SERVER


class Api:
    """The API at `url` (the site's address; `/api/` is added), as the token's user."""

    def __init__(self, url: str, token: str, idempotency_key: str | None = None):
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ApiError(
                f"Give the server's address as http://… or https://…, not {url!r}.", USAGE
            )
        self.base = url.removesuffix("/api")
        self.token = token
        self.idempotency_key = idempotency_key or str(uuid.uuid4())
        self._posts = 0

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        if not path.startswith("/api/"):
            path = "/api/" + path.lstrip("/")
        return self.base + path

    def _key(self) -> str:
        # One key per invocation; a second POST in the same invocation is another request.
        self._posts += 1
        return self.idempotency_key if self._posts == 1 else f"{self.idempotency_key}-{self._posts}"

    def open(self, method: str, path: str, *, body=None, headers=None, query=None):
        """The open response to a request (the caller reads and closes it)."""
        url = self.url(path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        all_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        if method == "POST":
            all_headers["Idempotency-Key"] = self._key()
        attempts = RETRIES + 1 if method in ("GET", "POST") else 1
        for attempt in range(attempts):
            # The scheme is http or https: checked when the Api is made, and links come from it.
            request = urllib.request.Request(  # noqa: S310
                url, data=body, method=method, headers=all_headers
            )
            try:
                return urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                exc.close()
                raise ApiError(_error_message(exc.code, raw), _exit_code(exc.code)) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                # A streamed body cannot be sent again.
                if attempt + 1 < attempts and not _is_stream(body):
                    time.sleep(1 + attempt)
                    continue
                raise ApiError(
                    f"Cannot reach the server at {self.base}: {reason}.", SERVER
                ) from None
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, body=None, query=None):
        with self.open(method, path, body=body, query=query) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def get(self, path: str, **query):
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body=None):
        return self.request("POST", path, body=body if body is not None else {})

    def delete(self, path: str):
        return self.request("DELETE", path)

    def list(self, path: str, **query) -> list[dict]:
        """Every item of a paginated list."""
        items: list[dict] = []
        page = self.get(path, page_size=PAGE_SIZE, **query)
        while True:
            items.extend(page["results"])
            if not page.get("next"):
                return items
            page = self.request("GET", page["next"])


def _is_stream(body) -> bool:
    return body is not None and not isinstance(body, bytes)


def multipart(fields: dict[str, str], file_field: str, path, file_name: str):
    """A multipart/form-data body that streams the file: (content type, length, chunks)."""
    boundary = uuid.uuid4().hex
    head = b""
    for name, value in fields.items():
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    quoted = file_name.replace('"', "%22")
    head += (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{file_field}"; filename="{quoted}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)

    def chunks() -> Iterator[bytes]:
        yield head
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk
        yield tail

    body: Iterable[bytes] = chunks()
    return f"multipart/form-data; boundary={boundary}", length, body
