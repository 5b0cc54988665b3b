"""Writes of legal: placements and recalls, legal matters. Letters live in legal.letters."""
