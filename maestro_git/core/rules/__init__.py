"""Validation: the rule catalogue and the checks that produce `Problem` values (pure)."""
