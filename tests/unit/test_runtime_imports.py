"""The Cal.com emulator is a development tool: the server and the operator commands never import it
(only `rezeption calcom-emulator` does, when asked)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from rezeption.app import create_app
from rezeption.settings import Settings
import rezeption.cli
create_app(Settings(environment="test"))
loaded = sorted(m for m in sys.modules if m.startswith("rezeption.emulators"))
print(",".join(loaded))
"""


def test_the_server_and_the_commands_do_not_import_the_emulator() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
