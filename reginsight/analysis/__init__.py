"""The analysis layer: pure DataFrame in, DataFrame (or Series) out; no I/O."""
