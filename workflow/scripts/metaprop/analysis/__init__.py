"""From checked rows to results tables: counts per outcome, pooled rows, tests, sensitivity."""
