"""Live progress of a run: results recorded per variant against what the run planned."""

from __future__ import annotations

from collections import Counter
from typing import Any

from assay.store.runstore import RunStore


def progress(store: RunStore, run_id: str) -> dict[str, Any]:
    """``done``/``planned`` per variant (planned = samples x repeats), and in total."""
    run = store.get_run(run_id)
    config = run.config
    done = Counter(variant for variant, _, _ in store.completed_keys(run.id))
    n_samples = config.n_samples
    planned = n_samples * config.repeats if n_samples is not None else None
    variants = [
        {"key": v.key, "done": done.get(v.key, 0), "planned": planned} for v in config.variants
    ]
    total_planned = None if planned is None else planned * len(variants)
    return {
        "run_id": run.id,
        "kind": run.kind,
        "status": run.status,
        "updated_at": run.updated_at,
        "done": sum(done.values()),
        "planned": total_planned,
        "variants": variants,
        "iterations": len(store.iterations(run.id)) if run.kind == "optimize" else None,
    }
