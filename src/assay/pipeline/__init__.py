"""Pipeline mode: benchmark and optimize a prompt that lives inside your own code.

Point ``assay run`` or ``assay optimize`` at a function with ``--pipeline agent.py:answer``.
It is called once per sample as ``answer(prompt, sample, client)``: ``prompt`` is the prompt
under test (its ``{{field}}`` slots filled from the sample), ``sample`` a read-only
:class:`SampleView`, and ``client`` speaks the OpenAI chat interface
(``client.chat.completions.create(...)``) with every call sent through Assay's engine: the
run's model, cache, budget, limits, retries, cost and latency. It returns the final output as
a ``str``, or a :class:`PipelineResult` with a trace of :class:`TraceNode` steps.

Only the public types live here; loading and running a pipeline are in the submodules.
"""

from assay.pipeline.types import PipelineResult, SampleView
from assay.trace import TraceNode

__all__ = ["PipelineResult", "SampleView", "TraceNode"]
