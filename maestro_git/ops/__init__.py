"""Use cases that move data in and out, and people and their data (over repo and mirror)."""
