"""The stress command: what a public URL does to the app (fuzzing, load, broken checkpoints, kills in training)."""
