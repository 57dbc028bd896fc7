"""Text from models, servers and data files, made safe to print on a terminal.

A model reply, an error body or a data row may hold terminal control sequences: ``ESC[2J``
clears the screen, ``ESC]0;…BEL`` sets the window title, and worse. Every place the CLI prints
such text passes it through :func:`visible` first, whether or not the output is a terminal.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and the C1 controls (U+009B is a one-character CSI
# to some terminals).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with each control character except newline and tab written as an escape
    (ESC becomes the four characters ``\\x1b``); a CRLF line break becomes a newline."""
    return _CONTROL.sub(_escape, text.replace("\r\n", "\n"))


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"
