"""Accelerated paths over Whoosh internals, bounded here and version-guarded."""
