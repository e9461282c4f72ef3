"""nn.MSELoss."""
from .. import functional as F
from .module import Module

__all__ = ["MSELoss"]


class MSELoss(Module):
    """Mean squared error; reduction 'mean' | 'sum' | 'none'."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = F._reduction_of(size_average, reduce, reduction)
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
