"""``assay run``: plan -> execute -> score -> aggregate -> compare -> recommend."""
