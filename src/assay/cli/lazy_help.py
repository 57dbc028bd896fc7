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


METRIC_FORMS = """[bold]Metric forms[/bold]: the part after the colon is the argument; one in
square brackets may be left out.

  --metric label:positive,negative   only these labels count (default: the references' labels)
  --metric number:0.01               the last numbers agree within 1% (relative tolerance)
  --metric rouge:rouge1              a ROUGE variant (default rougeL)
  --metric bleu:char                 a BLEU tokenizer (default 13a; char or zh for CJK)
  --metric regex:'^(yes|no)$'        a regular expression the output must match
  --metric json-schema:schema.json   a JSON Schema file the output must validate against
  --metric python:metrics.py:score   your function, from a file
"""


def metrics_section() -> str:
    """The ``--metric`` kinds, from the metric registry, and examples of their forms."""
    from assay.scoring.metrics import METRIC_KINDS

    lines = [f"  {kind.usage}: {kind.help}" for kind in METRIC_KINDS.values()]
    heading = "[bold]Metrics[/bold] (--metric, repeatable; the first is the primary score)"
    return heading + "\n\n" + "\n".join(lines) + "\n\n" + METRIC_FORMS
