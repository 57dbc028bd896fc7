"""The CLI's rich Consoles: terminal width on a terminal, full width in a pipe or a log file.

A Console whose stream is not a terminal would otherwise lay tables out at 80 columns (or
``$COLUMNS``) and cut their headers ("toke in/o"); a log has no width to respect, so there
each table takes the width its content needs.
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

LOG_WIDTH = 4096
"""Columns offered to tables when the output is not a terminal (they take what they need)."""


class CliConsole(Console):
    """A Console that, writing to anything but a terminal, lays out at :data:`LOG_WIDTH`.

    The stream is checked at each print, so redirecting stdout later is honoured.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(max(size.width, LOG_WIDTH), size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def cli_console(stderr: bool = False) -> CliConsole:
    """The console the CLI prints results (stdout) or plans and warnings (stderr) with."""
    return CliConsole(stderr=stderr)
