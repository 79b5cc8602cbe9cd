"""tinygrad_rad.models."""
