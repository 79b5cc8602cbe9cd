"""Applications on ONE shared training loop (:mod:`tinygrad_rad.tasks.loop`).

* :mod:`~tinygrad_rad.tasks.classify` - MedMNIST 2D classification (``tinygrad-rad train``);
* :mod:`~tinygrad_rad.tasks.classify3d` - MedMNIST 3D volumes (``tinygrad-rad train --data vesselmnist3d``);
* :mod:`~tinygrad_rad.tasks.segment`  - binary U-Net segmentation (``tinygrad-rad segment ...``);
* :mod:`~tinygrad_rad.tasks.detect`   - CenterNet nodule detection (``tinygrad-rad detect ...``);
* :mod:`~tinygrad_rad.tasks.recipe`   - the classification recipes' optional pieces (flip rule, stratified
  subset, class weights, weight average, test-time augmentation).

A new task is a :class:`~tinygrad_rad.tasks.loop.Task` subclass (its data, model, loss of one batch,
validation metrics and final test) plus a config dataclass; the loop does epochs, progress, best/last
checkpoints, exact resume, Ctrl-C, ``history.csv``, ``metrics.json`` and the curves.

    >>> from tinygrad_rad.tasks import classify
    >>> classify.fit(classify.TrainConfig(epochs=2, out="runs/try"))["test_auc"]
"""

from .loop import NonFiniteLoss, Task, TrainingInterrupted, train

__all__ = ["Task", "train", "TrainingInterrupted", "NonFiniteLoss"]
