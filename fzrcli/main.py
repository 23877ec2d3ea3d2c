"""The ``fzr`` entry point: errors become one message and an exit code.

cron's line is a plain ``fzr sync`` every five minutes, and most of those passes find
nothing to do, so that exact invocation runs without loading the CLI framework (about a
fifth of an idle pass's start-up). Every other invocation goes through ``cli.app``.
"""

from __future__ import annotations

import logging
import sqlite3
import sys

from fzrcli import output
from fzrcli.errors import FzrError


def main() -> None:
    try:
        if sys.argv[1:] == ["sync"]:
            sys.exit(_plain_sync())
        from fzrcli.cli import app

        app()
    except FzrError as error:
        output.warn(str(error))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        output.warn("interrupted; what was committed stays, the next pass resumes")
        sys.exit(130)
    except sqlite3.DatabaseError as error:
        output.warn(
            f"the state file is damaged or not fzr's ({error}); move it away "
            "or restore it from a backup (a new one starts from --since)"
        )
        sys.exit(1)
    except Exception as error:  # a bug: say so in one line, details with -vv
        if logging.getLogger("fzrcli").isEnabledFor(logging.DEBUG):
            raise
        output.warn(
            f"internal error: {type(error).__name__}: {error}; run again with "
            "-vv for the details and report it"
        )
        sys.exit(1)


def _plain_sync() -> int:
    from fzrcli import commands

    output.setup_logging(0, False)
    return commands.sync(None, dry_run=False, resume_writes=False)
