"""Record kinds: per category, how an import row, a check's criteria and a stored row look."""
