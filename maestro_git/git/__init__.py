"""The git layer: the only importer of pygit2 (reads, compare-and-swap writes, path history)."""
