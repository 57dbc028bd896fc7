"""The engine: scheduling, limits, retries, cache, costs."""
