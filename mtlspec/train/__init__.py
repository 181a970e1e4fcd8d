"""Training: the loop, atomic checkpoints with everything needed to resume, and evaluation."""
