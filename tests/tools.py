"""Command-line tools some tests drive (promtool; later chromium): found on PATH, or installed from
Debian's packages by the test setup when missing. A tool that cannot be installed fails the test
with the reason; it is never skipped."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def ensure_command(command: str, package: str) -> str:
    """The path of `command`, installing Debian's `package` first when it is missing (and, if the
    package lists are stale, updating them and trying once more)."""
    found = shutil.which(command)
    if found:
        return found
    # the suite's worker processes install one at a time (apt holds its own lock and fails the other)
    with open(Path(tempfile.gettempdir()) / "rezeption-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install(command, package)


def _install(command: str, package: str) -> str:
    found = shutil.which(command)  # another worker may have installed it meanwhile
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    output = []
    for args in (install, [*sudo, "apt-get", "update", "-q"], install):
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
        output.append(f"$ {' '.join(args)}\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
        found = shutil.which(command)
        if found:
            return found
    raise AssertionError(
        f"{command} is missing and apt-get could not install {package}:\n" + "\n".join(output)
    )
