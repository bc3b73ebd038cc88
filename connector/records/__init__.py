"""National records: the category model, the store, importers and matchers."""
