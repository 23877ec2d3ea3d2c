"""Run ``fzr`` with one of its performance means switched off (benchmark only).

    python bench/variant.py MEANS -- fzr-arguments…

MEANS is one of: all (nothing switched off), serial (one instance read and one comment
at a time), unbatched-lookups (one customer name per CRM lookup), ungrouped-writes
(one customer per distribution call), eager-imports (tenacity and rich loaded up
front, the CLI framework always). The switch is made here, by setting fzr's own
constants before it starts, so fzr itself carries no benchmark switches.
"""

from __future__ import annotations

import sys


def switch_off(means: str) -> None:
    if means == "serial":
        from fzrcli import comments, sync

        sync.FETCH_WORKERS = 1
        comments.IN_FLIGHT = 1
    elif means == "unbatched-lookups":
        from fzrcli import xbb

        original = xbb.Xbb.find_customers

        def one_by_one(self, names):
            found = {}
            for name in names:
                found.update(original(self, [name]))
            return found

        xbb.Xbb.find_customers = one_by_one
    elif means == "ungrouped-writes":
        from fzrcli import owners

        owners.GROUP_SIZE = 1
    elif means == "eager-imports":
        import rich.console  # noqa: F401
        import tenacity  # noqa: F401
        import typer  # noqa: F401
    elif means != "all":
        sys.exit(f"unknown means {means!r}")


if __name__ == "__main__":
    means, separator, *arguments = sys.argv[1:]
    switch_off(means)
    from fzrcli.main import main

    sys.argv = ["fzr", *arguments]
    if means == "eager-imports" and arguments == ["sync"]:
        sys.argv = ["fzr", "-v", "sync"]  # through the CLI framework
    main()
