"""One module per task type: its head, loss (masked by `has`, weighted per sample), decoding and metrics."""
