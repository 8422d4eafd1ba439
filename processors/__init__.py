"""Processors: the stage between `newswatch.articles` and `newswatch.matches`."""
