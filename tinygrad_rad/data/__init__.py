"""tinygrad_rad.data."""
