"""Where text goes: results on stdout, progress and errors on stderr.

Rich styling is used only when the stream is a terminal, so cron mail and pipes get
plain text. Logging goes to stderr; the level follows ``--verbose`` / ``--quiet``.
"""

from __future__ import annotations

import logging
import sys


class Secrets(logging.Filter):
    """Last line of defence: any configured secret that reaches a log line is masked."""

    def __init__(self, values: list[str]):
        super().__init__()
        self.values = [v for v in values if len(v) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(v in message for v in self.values):
            for value in self.values:
                message = message.replace(value, "***")
            record.msg, record.args = message, ()
        return True


_handler: logging.Handler | None = None


def setup_logging(verbosity: int, quiet: bool) -> None:
    global _handler
    level = (
        logging.ERROR
        if quiet
        else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    )
    root = logging.getLogger("fzrcli")
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("fzr: %(levelname)s %(message)s"))
    root.addHandler(_handler)
    root.setLevel(level)
    root.propagate = False


def mask_secrets(values: list[str]) -> None:
    if _handler is not None:
        for existing in list(_handler.filters):
            _handler.removeFilter(existing)
        _handler.addFilter(Secrets(values))


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def say(text: str) -> None:
    """A result line on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def warn(text: str) -> None:
    """A problem on stderr, styled only on a terminal."""
    if is_terminal(sys.stderr):
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, highlight=False).print(
            f"[bold red]fzr:[/] {escape(text)}", markup=True, soft_wrap=True
        )
    else:
        sys.stderr.write(f"fzr: {text}\n")
    sys.stderr.flush()


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table on stdout: rich on a terminal, tab-separated otherwise."""
    if is_terminal(sys.stdout):
        from rich.console import Console
        from rich.table import Table

        grid = Table(title=title, title_justify="left")
        for column in columns:
            grid.add_column(column, overflow="fold")
        for row in rows:
            grid.add_row(*row)
        Console(highlight=False).print(grid)
        return
    say(f"# {title}")
    say("\t".join(columns))
    for row in rows:
        say("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))
