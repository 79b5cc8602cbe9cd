"""tinygrad_rad.optim."""
