"""Training and validation data: online blur-down training windows, pre-degraded validation videos."""
from .kernels import KERNEL_TYPES, random_kernel
from .train_set import BlurDownTrainSet
from .val_set import HRLRValSet

__all__ = ["BlurDownTrainSet", "HRLRValSet", "KERNEL_TYPES", "random_kernel"]
