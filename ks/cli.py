"""`ks`: VMs, snapshots and operations from a shell or a script.

The commands, their options and the exit codes are in `ks --help`; the README's "Command-line
client" section shows them at work.
"""

from __future__ import annotations

import argparse
import configparser
import email.message
import json
import os
import re
import sys
import time
from pathlib import Path

from ks.client import FAILED, NOT_FOUND, OK, REFUSED, SERVER, USAGE, Api, ApiError, multipart

INTERRUPTED = 130  # as shells report Ctrl-C

EPILOG = f"""\
configuration:
  KS_URL and KS_TOKEN (the site's address and an API token), or url and token in
  ~/.config/ks/config (INI, under [ks]); the environment wins.

exit codes:
  {OK}  success
  {FAILED}  the operation failed (its error is printed)
  {USAGE}  usage error (bad arguments, no configuration, a name that is ambiguous)
  {NOT_FOUND}  not found (no such VM, snapshot, operation or image)
  {REFUSED}  refused by the server (4xx other than 404; its message is printed)
  {SERVER}  server or network error
  {INTERRUPTED}  interrupted (an operation already started goes on)
"""

POLL_SECONDS = float(os.environ.get("KS_POLL_SECONDS", "1"))
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FINISHED = {"succeeded", "failed", "skipped"}

COLUMNS = {
    "vm": ["id", "name", "state", "image", "vcpus", "memory_mib", "disk_gib", "ip_address"],
    "snapshot": ["id", "name", "vm_name", "kind", "state", "consistency", "size", "created_at"],
    "operation": ["id", "kind", "state", "progress", "target_name", "error"],
    "image": ["slug", "name", "min_disk_gib", "description"],
    "export": ["id", "snapshot_name", "state", "size", "expires_at"],
}


class UsageError(ApiError):
    def __init__(self, message: str):
        super().__init__(message, USAGE)


# Configuration


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ks" / "config"


def read_config() -> tuple[str, str]:
    """The server's address and the token: from the environment, else the config file."""
    values = {"url": "", "token": ""}
    path = config_path()
    if path.is_file():
        text = path.read_text()
        if not re.search(r"^\s*\[", text, re.MULTILINE):
            text = "[ks]\n" + text
        parser = configparser.ConfigParser()
        try:
            parser.read_string(text)
        except configparser.Error as exc:
            raise UsageError(f"{path} is not an INI file: {exc}") from None
        section = parser["ks"] if parser.has_section("ks") else parser[parser.sections()[0]]
        values.update({key: section.get(key, "") for key in values})
    url = os.environ.get("KS_URL") or values["url"]
    token = os.environ.get("KS_TOKEN") or values["token"]
    if not url or not token:
        raise UsageError(
            "Tell ks where the server is and who you are: set KS_URL and KS_TOKEN, or url and "
            f"token in {path}."
        )
    return url, token


# Output


def human_bytes(value) -> str:
    if not isinstance(value, (int, float)):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _cell(row: dict, column: str) -> str:
    if column == "size":
        return human_bytes(row.get("size_bytes"))
    value = row.get(column)
    if value is None:
        return ""
    if column == "progress":
        return f"{value}%"
    if column.endswith("_at"):
        return str(value)[:19].replace("T", " ")
    return str(value).replace("\n", " ")


def show(args, kind: str, data) -> None:
    """Print one object or a list: a table, its JSON with --json, only ids with --quiet."""
    rows = data if isinstance(data, list) else [data]
    key = "slug" if kind == "image" else "id"
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.quiet:
        for row in rows:
            print(row[key])
    else:
        columns = COLUMNS[kind]
        table = [[c.upper() for c in columns]] + [[_cell(r, c) for c in columns] for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        for line in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


# Operations


def _progress_line(op: dict) -> str:
    text = f"{op.get('kind_display') or op['kind']}: {op['state']} {op.get('progress') or 0}%"
    return text + (f" {op['message']}" if op.get("message") else "")


def wait(api: Api, op: dict) -> dict:
    """Poll the operation until it finishes, showing its progress on stderr; fail (exit 1)
    with its error unless it succeeded."""
    tty = sys.stderr.isatty()
    last = None
    while True:
        if tty:
            done = int((op.get("progress") or 0) / 5)
            bar = "#" * done + "-" * (20 - done)
            sys.stderr.write(f"\r[{bar}] {_progress_line(op)[:60]:<60}")
            sys.stderr.flush()
        elif _progress_line(op) != last:
            last = _progress_line(op)
            print(last, file=sys.stderr)
        if op["state"] in FINISHED:
            break
        time.sleep(POLL_SECONDS)
        op = api.get(f"operations/{op['id']}/")
    if tty:
        sys.stderr.write("\n")
    if op["state"] != "succeeded":
        reason = op.get("error") or op.get("message") or f"The operation was {op['state']}."
        raise ApiError(reason, FAILED)
    return op


def started(args, api: Api, op: dict, then=None) -> None:
    """After a request that started an operation: print it at once with --no-wait; otherwise
    wait for it and print what `then(op)` fetches (the operation itself without it)."""
    if args.no_wait:
        show(args, "operation", op)
        return
    op = wait(api, op)
    if then is None:
        show(args, "operation", op)
    else:
        then(op)


def _linked(api: Api, op: dict, name: str) -> dict:
    target = (op.get("result") or {}).get(name) or op.get(name)
    if not target:
        raise ApiError(f"The operation names no {name}.", SERVER)
    return api.get(f"{name}s/{target}/") if name != "vm" else api.get(f"vms/{target}/")


# Names and ids


def _by_id_or_name(api: Api, path: str, ref: str, what: str, hint: str, **query) -> dict:
    if _UUID.fullmatch(ref):
        try:
            return api.get(f"{path}/{ref}/")
        except ApiError as exc:
            if exc.exit_code != NOT_FOUND:
                raise
    matches = [item for item in api.list(f"{path}/", **query) if item["name"] == ref]
    if not matches:
        raise ApiError(f"There is no {what} {ref!r} among yours; {hint} lists them.", NOT_FOUND)
    if len(matches) > 1:
        raise UsageError(
            f"{len(matches)} {what}s are named {ref!r}; name one by its id ({hint} lists them)."
        )
    return matches[0]


def find_vm(api: Api, ref: str) -> dict:
    return _by_id_or_name(api, "vms", ref, "VM", "`ks vm list`")


def find_snapshot(api: Api, ref: str, vm: str | None = None) -> dict:
    query = {"vm": find_vm(api, vm)["id"]} if vm else {}
    return _by_id_or_name(api, "snapshots", ref, "snapshot", "`ks snapshot list`", **query)


# Commands


def vm_list(args, api):
    show(args, "vm", api.list("vms/"))


def vm_create(args, api):
    body = {"name": args.name, "image": args.image}
    for option in ("vcpus", "memory_mib", "disk_gib"):
        if getattr(args, option) is not None:
            body[option] = getattr(args, option)
    op = api.post("vms/", body)
    started(args, api, op, lambda done: show(args, "vm", _linked(api, done, "vm")))


def _vm_action(action: str, body=None):
    def command(args, api):
        vm = find_vm(api, args.vm)
        op = api.post(f"vms/{vm['id']}/{action}/", body(args) if body else {})
        started(args, api, op, lambda _done: show(args, "vm", api.get(f"vms/{vm['id']}/")))

    return command


def vm_fork(args, api):
    vm = find_vm(api, args.vm)
    op = api.post(f"vms/{vm['id']}/fork/", {"count": args.count})

    def children(done):
        ids = set((done.get("result") or {}).get("vms") or [])
        show(args, "vm", [item for item in api.list("vms/") if item["id"] in ids])

    started(args, api, op, children)


def vm_delete(args, api):
    vm = find_vm(api, args.vm)
    started(args, api, api.delete(f"vms/{vm['id']}/"))


def snapshot_take(args, api):
    vm = find_vm(api, args.vm)
    body = {"name": args.name, "include_memory": args.memory}
    if args.description:
        body["description"] = args.description
    op = api.post(f"vms/{vm['id']}/snapshots/", body)
    started(args, api, op, lambda done: show(args, "snapshot", _linked(api, done, "snapshot")))


def snapshot_list(args, api):
    query = {"vm": find_vm(api, args.vm)["id"]} if args.vm else {}
    show(args, "snapshot", api.list("snapshots/", **query))


def snapshot_restore(args, api):
    snapshot = find_snapshot(api, args.snapshot, args.vm)
    op = api.post(f"snapshots/{snapshot['id']}/restore/", {})
    started(args, api, op, lambda done: show(args, "vm", _linked(api, done, "vm")))


def snapshot_delete(args, api):
    snapshot = find_snapshot(api, args.snapshot, args.vm)
    started(args, api, api.delete(f"snapshots/{snapshot['id']}/"))


def snapshot_new_vm(args, api):
    snapshot = find_snapshot(api, args.snapshot, args.vm)
    body = {"name": args.name}
    if args.full_copy:
        body["full_copy"] = True
    op = api.post(f"snapshots/{snapshot['id']}/vms/", body)
    started(args, api, op, lambda done: show(args, "vm", _linked(api, done, "vm")))


def snapshot_export(args, api):
    snapshot = find_snapshot(api, args.snapshot, args.vm)
    op = api.post(f"snapshots/{snapshot['id']}/exports/", {})

    def download(done):
        exports = [e for e in api.list("exports/") if e["operation"] == done["id"]]
        if not exports or not exports[0].get("download"):
            raise ApiError("The export finished but has no file to download.", SERVER)
        with api.open("GET", exports[0]["download"]) as response:
            target = Path(args.output or _attachment_name(response) or "snapshot.qcow2")
            with target.open("wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        if args.json:
            print(json.dumps({**exports[0], "file": str(target)}, indent=2))
        else:
            print(target)

    started(args, api, op, download)


def _attachment_name(response) -> str | None:
    message = email.message.Message()
    message["Content-Disposition"] = response.headers.get("Content-Disposition", "")
    name = message.get_param("filename", header="Content-Disposition")
    # Only a plain file name, in the current folder, whatever the header says.
    return Path(str(name)).name if name else None


def snapshot_import(args, api):
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"There is no file {args.file!r}.")
    fmt = args.format
    if fmt is None:
        with path.open("rb") as handle:
            fmt = "qcow2" if handle.read(4) == b"QFI\xfb" else "raw"
    fields = {"name": args.name, "format": fmt}
    if args.image:
        fields["image"] = args.image
    content_type, length, chunks = multipart(fields, "file", path, path.name)
    headers = {"Content-Type": content_type, "Content-Length": str(length)}
    with api.open("POST", "snapshots/import/", body=chunks, headers=headers) as response:
        op = json.loads(response.read())
    started(args, api, op, lambda done: show(args, "snapshot", _linked(api, done, "snapshot")))


def op_wait(args, api):
    try:
        op = api.get(f"operations/{args.id}/")
    except ApiError as exc:
        if exc.exit_code == NOT_FOUND:
            exc.message = f"There is no operation {args.id!r} among yours."
        raise
    show(args, "operation", wait(api, op))


def image_list(args, api):
    show(args, "image", api.list("images/"))


# The parser


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    output = common.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only the ids",
    )
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--no-wait",
        action="store_true",
        help="return at once with the operation instead of waiting for it",
    )

    root = argparse.ArgumentParser(
        prog="ks",
        description="VMs and their snapshots on a Koding Snapshots server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    root.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the Idempotency-Key to send (a new one each run by default): give the same key "
        "to a retried command and the server does the work once",
    )
    topics = root.add_subparsers(dest="topic", required=True, metavar="{vm,snapshot,op,image}")

    def group(name: str, help_text: str):
        sub = topics.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest="command", required=True)

    def command(commands, name, handler, help_text, *, starts=False):
        parents = [common, waiting] if starts else [common]
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=parents)
        sub.set_defaults(handler=handler)
        return sub

    vm = group("vm", "your VMs")
    command(vm, "list", vm_list, "list your VMs")
    sub = command(vm, "create", vm_create, "create a VM from an image and boot it", starts=True)
    sub.add_argument("name")
    sub.add_argument("--image", required=True, help="an image's slug (see `ks image list`)")
    sub.add_argument("--vcpus", type=int)
    sub.add_argument("--memory-mib", type=int)
    sub.add_argument("--disk-gib", type=int)
    sub = command(vm, "start", _vm_action("start"), "boot a stopped VM", starts=True)
    sub.add_argument("vm", help="its name or id")
    sub = command(
        vm, "stop", _vm_action("stop", lambda a: {"force": a.force}), "stop a VM", starts=True
    )
    sub.add_argument("vm", help="its name or id")
    sub.add_argument("--force", action="store_true", help="pull the plug")
    sub = command(
        vm,
        "fork",
        vm_fork,
        "fork a running VM: new VMs that resume where it is now, each with its own identity",
        starts=True,
    )
    sub.add_argument("vm", help="its name or id")
    sub.add_argument("--count", type=int, default=1, help="how many new VMs (1 to 10)")
    sub = command(vm, "delete", vm_delete, "delete a VM (its snapshots are kept)", starts=True)
    sub.add_argument("vm", help="its name or id")

    snapshot = group("snapshot", "snapshots of your VMs")
    sub = command(snapshot, "take", snapshot_take, "take a snapshot of a VM", starts=True)
    sub.add_argument("vm", help="its name or id")
    sub.add_argument("name")
    sub.add_argument("--description")
    sub.add_argument("--memory", action="store_true", help="keep the running guest's memory too")
    sub = command(snapshot, "list", snapshot_list, "list your snapshots")
    sub.add_argument("--vm", help="only this VM's")

    def snapshot_command(name, handler, help_text):
        sub = command(snapshot, name, handler, help_text, starts=True)
        sub.add_argument("snapshot", help="its name or id")
        sub.add_argument("--vm", help="look the name up among this VM's snapshots")
        return sub

    snapshot_command("restore", snapshot_restore, "put a VM's disk back to a snapshot")
    snapshot_command("delete", snapshot_delete, "delete a snapshot")
    sub = snapshot_command("new-vm", snapshot_new_vm, "start a new VM from a snapshot")
    sub.add_argument("name")
    sub.add_argument("--full-copy", action="store_true", help="an independent disk")
    sub = snapshot_command("export", snapshot_export, "export a snapshot as a qcow2 file")
    sub.add_argument("-o", "--output", help="the file to write (the server's name by default)")
    sub = command(
        snapshot, "import", snapshot_import, "import a disk image as a snapshot", starts=True
    )
    sub.add_argument("file")
    sub.add_argument("name")
    sub.add_argument("--format", choices=["qcow2", "raw"], help="read from the file by default")
    sub.add_argument("--image", help="the image whose kernel it boots with (its slug)")

    op = group("op", "operations: the long actions")
    sub = command(op, "wait", op_wait, "wait for an operation to finish, showing its progress")
    sub.add_argument("id")

    image = group("image", "the images new VMs start from")
    command(image, "list", image_list, "list the images")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    args.quiet = getattr(args, "quiet", False)
    args.no_wait = getattr(args, "no_wait", False)
    try:
        url, token = read_config()
        api = Api(url, token, idempotency_key=args.idempotency_key)
        args.handler(args, api)
    except ApiError as exc:
        print(f"ks: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "ks: interrupted; an operation already started goes on (`ks op wait`).", file=sys.stderr
        )
        return INTERRUPTED
    return OK
