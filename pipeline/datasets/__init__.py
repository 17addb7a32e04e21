"""Example data: the synthetic generator and the MovieLens converter."""
