"""Putting saved runs to work: scoring new text with a run (``predict``) or an ensemble of
runs."""
