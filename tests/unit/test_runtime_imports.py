"""The emulators are development tools and retell-sdk is the agent commands' extra: the server and the
operator commands never import them (only `calcom-emulator`, `retell-emulator` and `agent publish`
and its siblings do, when asked)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from rezeption.app import create_app
from rezeption.settings import Settings
import rezeption.cli
create_app(Settings(environment="test"))
loaded = sorted(m for m in sys.modules if m.startswith("rezeption.emulators") or m.split(".")[0] == "retell")
print(",".join(loaded))
"""


def test_the_server_and_the_commands_import_neither_the_emulators_nor_retell_sdk() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
