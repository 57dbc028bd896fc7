"""The page shell shared by the report file and the dashboard: styles, policy, one script.

The Content-Security-Policy allows only the page's own script, by hash: even if some text
escaped escaping, an injected ``<script>`` or ``onerror=`` handler would not run.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib.resources import files
from string import Template

from assay import __version__
from assay.report.html import Markup, esc


@cache
def _template() -> Template:
    return Template((files("assay.report") / "template.html").read_text(encoding="utf-8"))


@cache
def report_script() -> str:
    """The explorer and table script of the report (vanilla JS, no library)."""
    return (files("assay.report") / "report.js").read_text(encoding="utf-8")


def script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_policy(script: str, connect: str = "'none'") -> str:
    """Nothing from the network; only this exact script runs; data: images only."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {script_hash(script)}",
            "style-src 'unsafe-inline'",
            "img-src data:",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def render_page(
    title: str,
    body: Markup,
    *,
    script: str | None = None,
    nav: Markup = Markup(""),
    head: Markup = Markup(""),
    connect: str = "'none'",
) -> str:
    """A complete HTML document; ``title`` is text, the other parts are built markup."""
    code = report_script() if script is None else script
    # "</script" cannot occur in our own trusted scripts; check rather than assume.
    if "</script" in code.lower():
        raise ValueError("page script must not contain '</script'")
    return _template().substitute(
        csp=esc(content_policy(code, connect)),
        version=esc(__version__),
        head=head,
        title=esc(title),
        nav=nav,
        body=body,
        script=code,
    )
