"""Matching persons by name across scripts and spellings: normalise, key, score (all pure)."""
