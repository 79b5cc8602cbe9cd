"""Neural-network layers (``Module`` subclasses that own parameters) and ``nn.functional``."""

from . import functional  # noqa: F401
