"""The prompts a benchmark run sent: each distinct prompt's text, and line diffs between them.

Variant keys name a prompt by its file stem; a reviewer needs the words themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from assay.report.data import RunView
from assay.report.html import Markup, el, join
from assay.report.optimize import prompt_diff


@dataclass(frozen=True)
class PromptGroup:
    """One distinct prompt text and the variants that sent it."""

    name: str
    text: str
    variants: list[str]


def prompt_groups(view: RunView) -> list[PromptGroup]:
    """Distinct prompts in the run's variant order; named by the variant key when one variant
    sent it, by the prompt part of ``model · prompt`` keys, else "Prompt N"."""
    by_text: dict[str, list[str]] = {}
    for key in view.variant_keys:
        if key in view.prompts:
            by_text.setdefault(view.prompts[key], []).append(key)
    return [
        PromptGroup(_name(keys, i + 1, len(by_text)), text, keys)
        for i, (text, keys) in enumerate(by_text.items())
    ]


def _name(keys: list[str], number: int, count: int) -> str:
    if count == 1:
        return "Prompt"
    if len(keys) == 1:
        return keys[0]
    tails = {key.rsplit(" · ", 1)[-1] for key in keys}
    if len(tails) == 1 and all(" · " in key for key in keys):
        return tails.pop()
    return f"Prompt {number}"


def differs(view: RunView) -> str:
    """What differs between the variants: "prompts", "models", or "variants" (both, neither,
    or not known: a run that saved no prompt texts)."""
    many_models = len(set(view.variant_models.values())) > 1
    prompts = [view.prompts.get(key) for key in view.variant_keys]
    if None in prompts:
        return "variants"
    many_prompts = len(set(prompts)) > 1
    if many_prompts != many_models:
        return "prompts" if many_prompts else "models"
    return "variants"


def prompts_body(groups: list[PromptGroup]) -> Markup:
    """Each prompt's text, then the diff of every other prompt against the first one."""
    parts = [_prompt(g, len(groups) > 1) for g in groups]
    first = groups[0]
    for other in groups[1:]:
        title = f"Diff: {first.name} → {other.name}"
        diff = join([el("h3", title), prompt_diff(first.text, other.text)])
        parts.append(
            el("div", diff, class_="prompt-diff", data_prompts=f"{first.name}|{other.name}")
        )
    return join(parts)


def _prompt(group: PromptGroup, named: bool) -> Markup:
    parts = [el("h3", group.name)] if named else []
    if group.variants != [group.name]:
        parts.append(el("p", "Sent by: " + ", ".join(group.variants), class_="note"))
    parts.append(el("div", group.text, class_="prompt-text"))
    return el("div", parts, class_="prompt", data_prompt=group.name)
