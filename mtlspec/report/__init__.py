"""Rendering results for people and tools: validation summaries (and, later, run reports)."""
