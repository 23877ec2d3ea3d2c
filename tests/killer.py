"""Run fzr and SIGKILL it right after its Nth database commit: test instrumentation.

    python tests/killer.py N sync [options]

``Store.transaction`` is wrapped in this process only (fzr itself is unchanged), so the
kill lands between two commits exactly as a crash or an OOM kill would. N = 0 never
kills. On a normal exit the number of commits made is printed to stderr as
``killer: commits=<n>``, which is how the campaign learns how many points to try.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from contextlib import contextmanager

from fzrcli.store import Store


def kill_after_commit(number: int) -> list[int]:
    original = Store.transaction
    commits = [0]

    @contextmanager
    def transaction(self):
        with original(self) as db:
            yield db
        commits[0] += 1
        if commits[0] == number:
            os.kill(os.getpid(), signal.SIGKILL)

    Store.transaction = transaction
    return commits


def main() -> None:
    number, args = int(sys.argv[1]), sys.argv[2:]
    commits = kill_after_commit(number)
    atexit.register(lambda: print(f"killer: commits={commits[0]}", file=sys.stderr))
    sys.argv = ["fzr", *args]
    from fzrcli.main import main as fzr_main

    fzr_main()


if __name__ == "__main__":
    main()
