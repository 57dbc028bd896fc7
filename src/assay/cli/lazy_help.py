"""Command help that is built only when it is shown.

Parts of a command's help come from registries (the metric kinds, the strategies) whose modules
are too heavy to import for ``assay --help``; the full text is made on ``assay CMD --help``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from typer.core import TyperCommand


class LazyHelpCommand(TyperCommand):
    help_factory: Callable[[], str] = staticmethod(lambda: "")

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.help = self.help_factory()
        super().format_help(ctx, formatter)


def lazy_help(factory: Callable[[], str]) -> type[LazyHelpCommand]:
    """A command class whose help is ``factory()``, called when the help is printed."""
    return type("LazyHelp", (LazyHelpCommand,), {"help_factory": staticmethod(factory)})


def metrics_section() -> str:
    """The ``--metric`` kinds, from the metric registry."""
    from assay.scoring.metrics import METRIC_KINDS

    lines = [f"  {kind.usage}: {kind.help}" for kind in METRIC_KINDS.values()]
    return "[bold]Metrics[/bold] (--metric, repeatable; the first is the primary score)\n\n" + (
        "\n".join(lines)
    )
