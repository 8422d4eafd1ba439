"""Exec a command that dies with its parent: `python -m newswatch.stack.orphan_guard PARENT_PID CMD...`.

The supervisor starts every child through this, so a `newswatch up` that is killed outright
(SIGKILL, OOM) does not leave stages running. It replaces a `preexec_fn`, which is unsafe to
run in a process with threads (the demo feed server is one).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(f"orphan_guard: parent {parent} exited before {command[0]} started")  # it died meanwhile
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
