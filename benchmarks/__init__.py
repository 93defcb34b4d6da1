"""Side-by-side benchmarks of vikl against its peers (run as python -m benchmarks.<name>)."""
