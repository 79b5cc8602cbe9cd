"""tinygrad_rad.metrics."""
