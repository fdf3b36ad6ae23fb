"""Side-by-side benchmarks of charformer against a lecture-style baseline (python -m benchmarks)."""
