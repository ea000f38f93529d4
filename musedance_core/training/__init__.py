"""Training library: data, losses, steps, checkpoints and reports used by training/*.py."""
