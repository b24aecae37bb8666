"""GPU-correct measurement: stage/step timing, peak memory, the warm-up + repeats runner."""
