"""A small two-tool agent, ready for ``assay run --pipeline`` and ``assay optimize --pipeline``.

For each question the agent asks the model which tool to use (a calculator or a lookup over a
tiny document set), runs that tool, then asks the model to answer from the tool's result with
the prompt under test as its system prompt. It calls the model only through the ``client``
Assay passes in, so every call is metered, cached and budgeted by the run.

Written for the embedded model (local/smollm2, 135M parameters): the router's reply is read
leniently, and a rule picks the tool when the model's choice is unclear (the trace says so).
"""

from __future__ import annotations

import ast
import operator
import re

from assay.pipeline import PipelineResult, TraceNode

DOCUMENTS = {
    "water": "Water boils at 100 degrees Celsius at sea level and freezes at 0 degrees.",
    "moby-dick": "Moby-Dick is an 1851 novel by Herman Melville about the whale hunter Ahab.",
    "australia": "Canberra is the capital city of Australia; Sydney is its largest city.",
    "spiders": "Spiders are arachnids: every spider has eight legs and most have eight eyes.",
    "light": "Light travels at about 300,000 kilometres per second in a vacuum.",
}

ROUTER = (
    "You pick a tool. CALC does arithmetic. LOOKUP searches facts.\n"
    "Reply with one word: CALC or LOOKUP."
)

WORDS = {"plus": "+", "minus": "-", "times": "*", "multiplied by": "*", "divided by": "/"}
OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def calculator(question: str) -> str:
    """Evaluate the arithmetic in the question ("17 times 23", "9 squared")."""
    text = question.lower().replace("squared", "** 2")
    for word, symbol in WORDS.items():
        text = text.replace(word, symbol)
    expression = "".join(re.findall(r"[\d.]+|\*\*|[-+*/()]", text))
    value = _evaluate(ast.parse(expression, mode="eval").body)
    return f"{expression} = {value:g}"


def _evaluate(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not plain arithmetic")


def lookup(question: str) -> str:
    """The document sharing the most words with the question."""
    words = set(_words(question))
    return max(DOCUMENTS.values(), key=lambda doc: len(words & set(_words(doc))))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


TOOLS = {"CALC": ("calculator", calculator), "LOOKUP": ("lookup", lookup)}


def route(question: str, client) -> tuple[str, TraceNode]:
    """Ask the model for a tool; fall back to a rule when its reply names none."""
    reply = client.chat.completions.create(
        model=client.model,
        messages=[{"role": "system", "content": ROUTER}, {"role": "user", "content": question}],
        max_tokens=4,
        temperature=0,
    )
    text = reply.choices[0].message.content or ""
    choice = next((name for name in TOOLS if name in text.upper()), None)
    note = text
    if choice is None:
        choice = "CALC" if re.search(r"\d", question) else "LOOKUP"
        note = f"{text!r} named no tool; the rule chose {choice}"
    return choice, TraceNode("router", question, note, kind="model")


def answer(prompt: str, sample, client) -> PipelineResult:
    """The pipeline: route, run the tool, answer from its result with the prompt under test."""
    question = sample.input
    choice, routed = route(question, client)
    tool_name, tool = TOOLS[choice]
    result = tool(question)
    reply = client.chat.completions.create(
        model=client.model,
        messages=[
            {"role": "system", "content": prompt},
            {"role": "user", "content": f"Question: {question}\nTool result: {result}\nAnswer:"},
        ],
        max_tokens=32,
        temperature=0,
    )
    output = (reply.choices[0].message.content or "").strip()
    return PipelineResult(
        output,
        trace=[
            routed,
            TraceNode(tool_name, question, result, kind="tool"),
            TraceNode("answer", result, output, optimized=True, kind="model"),
        ],
    )
