"""A session: the run store, the price table and the response cache a job works with.

This is the one place that knows the store folder's layout (``runs.sqlite``, ``cache.sqlite``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assay.engine.cache import ResponseCache
from assay.pricing import PriceTable, load_price_table
from assay.store.runstore import RunStore, store_dir

CACHE_FILE = "cache.sqlite"


@dataclass(frozen=True)
class Session:
    store: RunStore
    prices: PriceTable
    cache: ResponseCache | None = None

    @classmethod
    def open(
        cls,
        store: str | Path | None = None,
        prices: str | Path | None = None,
        *,
        use_cache: bool = True,
    ) -> Session:
        """``store`` is the folder (``--store``, else ``$ASSAY_STORE``, else ``.assay``);
        ``prices`` an override file for the bundled price table."""
        return cls(RunStore.open(store), load_price_table(prices), open_cache(store, use_cache))


def open_cache(store: str | Path | None, use_cache: bool = True) -> ResponseCache | None:
    return ResponseCache(store_dir(store) / CACHE_FILE) if use_cache else None
