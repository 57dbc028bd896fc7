"""``assay optimize``: evaluate, diagnose, rewrite, verify on held-out data."""
