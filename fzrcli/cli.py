"""The ``fzr`` command line: options in, one call per command, exit code out."""

from __future__ import annotations

from typing import Optional

import typer

from fzrcli import output

app = typer.Typer(
    help="Turn approved DingTalk co-owner requests into XBB CRM owners.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_options(
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        help="More detail on stderr (-vv for HTTP detail).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr."),
) -> None:
    """Turn approved DingTalk co-owner requests into XBB CRM owners.

    Settings come from a TOML file (FZR_CONFIG, default ~/.config/fzr/config.toml) and
    FZR_* environment variables, which win. See the README for the table.
    """
    output.setup_logging(verbose, quiet)


@app.command()
def sync(
    since: Optional[str] = typer.Option(
        None,
        help="Re-scan requests created since: today, yesterday, 2d, "
        "6h or YYYY-MM-DD (finished work is not redone).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the CRM writes a pass would make; make none."
    ),
    resume_writes: bool = typer.Option(
        False,
        "--resume-writes",
        help="Lift the halt on CRM writes after owners vanished (check them first).",
    ),
) -> None:
    """Run one pass: find approved requests, add the owners, comment, record.

    Prints nothing when there was nothing to do, otherwise one summary line.
    Exit codes: 0 done, 1 the pass hit a problem (stderr says which), 2 bad
    settings or options, 3 another pass is running.
    """
    from fzrcli import commands

    raise typer.Exit(commands.sync(since, dry_run, resume_writes))


@app.command()
def fetch(
    since: Optional[str] = typer.Option(
        None,
        help="Re-scan requests created since: today, yesterday, 2d, 6h or YYYY-MM-DD.",
    ),
) -> None:
    """Pull approval requests into the local store and list the pending CRM work.

    Makes no CRM writes and posts no comments.
    """
    from fzrcli import commands

    raise typer.Exit(
        commands.sync(since, dry_run=True, resume_writes=False, fetch_only=True)
    )


@app.command()
def assign(
    customer: Optional[str] = typer.Option(
        None, "--customer", help="Customer name as in the CRM."
    ),
    data_id: Optional[int] = typer.Option(None, "--id", help="Customer dataId."),
    user: str = typer.Option(..., "--user", help="User id of the owner to add."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the write; make none."),
) -> None:
    """Add one owner to one customer by hand (no current-owner check).

    Refuses a name that matches no customer or several (listing them; use --id).
    The write is read back like in sync and recorded in the history as manual.
    Exit codes: 0 added or already an owner, 1 failed, 2 bad options,
    3 a sync pass is running, 4 refused (not found, ambiguous, inactive user).
    """
    from fzrcli import commands

    raise typer.Exit(commands.assign(customer, data_id, user, dry_run))


@app.command()
def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's state file."),
) -> None:
    """Show fzr working end to end against a local sandbox; needs no credentials.

    Starts the bundled emulator of DingTalk and the CRM on 127.0.0.1, runs real
    passes with a temporary state file and prints what happened.
    """
    from fzrcli.demo import run_demo

    raise typer.Exit(run_demo(keep))


@app.command()
def sandbox(
    scenario: str = typer.Option("demo", help="Bundled scenario name or a JSON file."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0 picks a free one)."),
) -> None:
    """Run the local DingTalk/CRM emulator in the foreground for trying fzr by hand.

    Prints export lines that point fzr at it; stop it with Ctrl-C.
    """
    from fzrcli.errors import UsageError
    from fzrcli.sandbox import load_scenario, serve

    try:
        serve(load_scenario(scenario), port=port)
    except (ValueError, OSError, OverflowError) as error:
        raise UsageError(f"sandbox: {error}") from None


# --- report and history commands ---
@app.command()
def report(
    date: Optional[str] = typer.Option(
        None,
        "--date",
        help="The day to report: today (default), yesterday or "
        "YYYY-MM-DD, in FZR_TIMEZONE.",
    ),
    since: Optional[str] = typer.Option(
        None,
        help="Start of the period instead of --date: today, yesterday, 2d, 6h, "
        "30m or YYYY-MM-DD.",
    ),
    until: Optional[str] = typer.Option(
        None,
        help="End of the period (with --since): now (default), 2d or 6h ago, or "
        "a day, which is included.",
    ),
    format: Optional[str] = typer.Option(
        None,
        "--format",
        help="table (default), json, csv (the items that need a human) or markdown.",
    ),
    send: bool = typer.Option(
        False,
        "--send",
        help="Post the markdown report to the DingTalk group robot "
        "(FZR_ROBOT_WEBHOOK, FZR_ROBOT_SECRET).",
    ),
) -> None:
    """Summarise a period: requests decided, items finished, what needs a
    human, and this month's API use against FZR_MONTHLY_QUOTA.

    Reads only the state file (FZR_DB), so it runs beside a sync pass.
    --send posts the markdown report to the group robot (at most 20 a
    minute) and prints one line, or the report in --format if given.
    Exit codes: 0 done, 1 no readable state file or the robot did not
    take the message (stderr says why), 2 bad settings or options.
    """
    from fzrcli.report import run_report

    raise typer.Exit(run_report(date, since, until, format, send))


@app.command()
def history(
    request: str = typer.Argument(..., help="Instance id or business id (审批编号)."),
    format: str = typer.Option("text", "--format", help="text or json."),
) -> None:
    """Show everything fzr knows and did about one approval request.

    REQUEST is its instance id or its business id (审批编号). Shows the
    request's facts, its events in order, each item with its attempts and
    outcome, and the comment posted back; times in FZR_TIMEZONE.
    Exit codes: 0 shown, 1 no readable state file, 2 bad options,
    4 no such request in the state file.
    """
    from fzrcli.history import run_history

    raise typer.Exit(run_history(request, format))


# --- end report and history ---
