"""bench/soak: a bounded soak under random faults that fails on resource growth (see __main__)."""
