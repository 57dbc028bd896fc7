"""The diagnose -> rewrite strategy: the reasoner rewrites the best prompt from its failures."""

from __future__ import annotations

from assay.data.prompts import PromptTemplate
from assay.optimizer.context import LoopState, OptimizeContext
from assay.optimizer.reasoner import (
    PROPOSE_RETRIES,
    Example,
    LogEntry,
    ReasonerInput,
    build_messages,
    propose,
)
from assay.optimizer.records import IterationRecord, prompt_diff
from assay.optimizer.strategies.base import Strategy
from assay.optimizer.strategies.common import (
    failing_examples,
    outcome_text,
    step_record,
    train_batch,
    verify,
)
from assay.records import GenerationParams


class IterativeStrategy(Strategy):
    """Diagnose the failures of the best prompt on a train batch, rewrite, verify on val."""

    name = "iterative"
    menu = "diagnose the failures, rewrite the prompt"
    chooser_line = "diagnose the failures and rewrite the wording of the prompt"
    asks_per_step = 1 + PROPOSE_RETRIES

    @classmethod
    def step_task_calls(cls, batch: int) -> int:
        return 2 * batch  # the parent and the rewrite on one batch

    async def step(self, state: LoopState, ctx: OptimizeContext) -> IterationRecord:
        idx = len(state.records)
        batch = train_batch(ctx, idx)
        parent = await ctx.evaluate(state.best, batch)
        examples = failing_examples(parent, batch)
        messages, shown = build_messages(
            self._input(state, ctx, examples),
            ctx.config.context_tokens,
            ctx.config.reasoning_max_tokens,
        )
        params = GenerationParams(
            max_tokens=ctx.config.reasoning_max_tokens, temperature=0.0, seed=ctx.config.seed
        )
        outcome = await propose(ctx.engine, ctx.config.reasoner, messages, params)
        record = step_record(
            self.name,
            idx,
            state,
            parent.mean,
            examples_shown=shown,
            reasoner_replies=outcome.replies,
        )
        if outcome.proposal is None:
            return record.model_copy(update={"reason": outcome.error or "no proposal"})
        candidate = PromptTemplate.from_text(outcome.proposal.prompt)
        record = record.model_copy(
            update={
                "prompt_hash": candidate.hash,
                "prompt": candidate.text,
                "diagnosis": outcome.proposal.diagnosis,
                "explanation": outcome.proposal.explanation,
                "diff": prompt_diff(state.best.text, candidate.text),
            }
        )
        return await verify(record, candidate, parent, batch, state, ctx)

    @staticmethod
    def _input(state: LoopState, ctx: OptimizeContext, examples: list[Example]) -> ReasonerInput:
        return ReasonerInput(
            prompt=state.best.text,
            scoring=ctx.scoring_text,
            target_model=ctx.config.model.spec,
            trajectory=[r.val_candidate for r in state.records if r.status != "rejected"],
            log=[LogEntry(r.idx, r.explanation, outcome_text(r)) for r in state.records[1:]],
            examples=examples,
            n_failing=len(examples),
            slots=state.best.slots,
            source_model=ctx.config.source_model,
        )
