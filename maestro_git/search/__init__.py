"""The Whoosh search index: the only importer of whoosh. `SearchIndex` (index.py) is its face."""
