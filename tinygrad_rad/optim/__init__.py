"""Optimizers (``SGD``, ``Adam``, ``AdamW``), learning-rate schedulers (``optim.lr_scheduler``) and weight
averaging (``optim.swa_utils``: ``AveragedModel``, ``update_bn``).

    >>> from tinygrad_rad import optim
    >>> opt = optim.AdamW(model.parameters(), lr=1e-3)
    >>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
"""

from . import (
    lr_scheduler,  # noqa: F401
    swa_utils,  # noqa: F401
)
from .adam import Adam, AdamW  # noqa: F401
from .lr_scheduler import (  # noqa: F401
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
    StepLR,
)
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
