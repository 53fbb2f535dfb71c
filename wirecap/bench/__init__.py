"""Benchmarks: every performance claim comes from one of these commands (DESIGN §7)."""
