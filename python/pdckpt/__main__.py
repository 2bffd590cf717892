# SPDX-License-Identifier: Apache-2.0
"""``python -m pdckpt ...`` and the ``pdckpt`` console command of the wheel: run the C command-line
tool that the wheel carries in ``pdckpt/_bin`` (the same program as a source build's ``pdckpt``)."""

from __future__ import annotations

import os
import sys


def _cli_path() -> str:
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "pdckpt")
    if os.access(here, os.X_OK):
        return here
    raise SystemExit("pdckpt: this installation has no command-line tool (pdckpt/_bin/pdckpt); "
                     "build from source with the CLI enabled")


def main() -> None:
    path = _cli_path()
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not a child process: exit status, signals and terminal handling are the tool's own.
    os.execv(path, ["pdckpt", *sys.argv[1:]])


if __name__ == "__main__":
    main()
