"""``assay``: the entry point. Only typer is imported here, so ``assay --help`` starts fast."""

from __future__ import annotations

import os
import sys

import typer

from assay import __version__

HELP = """Choose and tune an LLM on [bold]your own data[/bold].

[bold]Benchmark models[/bold] on your dataset and prompt (quality, $ per 1k requests, latency):

  assay run reviews.jsonl prompt.md -m openai/gpt-4o-mini -m local/smollm2 --metric label

[bold]Optimize a prompt[/bold] for one model, verified on held-out data:

  assay optimize reviews.jsonl prompt.md -m local/smollm2 --metric label -o best_prompt.md

[bold]Look before you spend[/bold]: [cyan]assay inspect DATA PROMPT[/cyan] renders a request,
[cyan]assay prices[/cyan] shows the price table. Results live in .assay/ ([cyan]assay runs[/cyan],
[cyan]assay show RUN[/cyan], [cyan]assay compare A B[/cyan]).

Add --debug before any command to see tracebacks.
"""

app = typer.Typer(
    name="assay",
    help=HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"assay {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """Assay command line."""


def _register() -> None:
    if app.registered_commands:  # main() ran before in this process (tests run it in-process)
        return
    from assay.cli import (
        data_cmds,
        export_cmds,
        init_cmds,
        judge_cmds,
        merge_cmds,
        optimize_cmds,
        report_cmds,
        run_cmds,
        store_cmds,
    )

    for module in (
        run_cmds,
        optimize_cmds,
        data_cmds,
        store_cmds,
        merge_cmds,
        judge_cmds,
        report_cmds,
        export_cmds,
        init_cmds,
    ):
        module.register(app)


def main() -> None:
    from assay.secrets import redacted_output

    with redacted_output():  # no known secret reaches the terminal, whatever prints it
        _main()


def _main() -> None:
    debug = "--debug" in sys.argv[1:] or bool(os.environ.get("ASSAY_DEBUG"))
    _register()
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        _fail("Interrupted", 130)
    except Exception as exc:  # one line for the user; --debug shows the traceback
        if debug:
            raise
        _fail_on(exc)
    raise SystemExit(code if isinstance(code, int) else 0)


def _fail_on(exc: Exception) -> None:
    import sqlite3

    from pydantic import ValidationError
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    from assay.errors import AssayError

    if isinstance(exc, NoArgsIsHelpError):
        exc.show()
        raise SystemExit(exc.exit_code)
    if isinstance(exc, ClickException):  # bad flags or values: click's message, on one line
        message = " ".join(exc.format_message().split())
        _fail(f"{message} (see assay COMMAND --help)", exc.exit_code)
    if isinstance(exc, AssayError):
        _fail(str(exc), exc.exit_code)
    if isinstance(exc, ValidationError):  # a config value the flags gave: pydantic's reason
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        _fail(f"Invalid {where or 'value'}: {message}", 2)
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        _fail(
            "The disk holding the run store or cache is full; completed results are saved "
            "(free some space, then resume the run: assay runs lists it)",
            1,
        )
    if isinstance(exc, sqlite3.DatabaseError):  # a store or cache file damaged mid-command
        _fail(f"The run store or cache is damaged ({exc}); move it aside or use --store DIR", 1)
    _fail(f"Unexpected {type(exc).__name__}: {exc} (rerun with --debug and report it)", 1)


def _fail(message: str, code: int) -> None:
    from assay.cli.untrusted import visible

    # The message may quote a server's error body or a data file: no control codes pass.
    typer.secho(f"error: {visible(message)}", err=True, fg="red")
    raise SystemExit(code)
