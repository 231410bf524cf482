"""The adapter is a library: it imports no Django, and it is the one place that imports
libvirt (its calls, and the live consoles the terminal keeps open)."""

import subprocess
import sys

from tests.conftest import ROOT

# The tests and benchmarks drive libvirt directly where they check what it holds.
IGNORED = {".venv", "tests", "bench", "var", "node_modules"}

CHECK = """
import sys
import vms.hypervisor, vms.hypervisor.fake, vms.hypervisor.consoles
django = sorted(m for m in sys.modules if m.split(".")[0] in ("django", "rest_framework"))
print(",".join(django))
"""


def test_the_adapter_and_its_fake_import_no_django():
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_no_other_module_of_the_service_imports_libvirt():
    apps = [p for p in ROOT.glob("*/**/*.py") if p.parts[len(ROOT.parts)] not in IGNORED]
    importers = {
        str(p.relative_to(ROOT))
        for p in apps
        if any(line.strip() in ("import libvirt", "from libvirt import") for line in p.open())
    }
    assert importers == {"vms/hypervisor/adapter.py", "vms/hypervisor/consoles.py"}
