"""Leaf helpers every layer may use: Backstage's errors, the clock, durations."""
