"""Datasets (the embedded multidigits and real formats), joint sampling, label masks, weights, transforms."""
