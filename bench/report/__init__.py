"""collect → tables: a grid's report, built from its run records."""
