"""nn.Flatten."""
from .module import Module

__all__ = ["Flatten"]


class Flatten(Module):
    """Flattens dims ``start_dim`` .. ``end_dim`` into one.

    Args:
        start_dim: first dim to flatten (default 1: keep the batch dim).
        end_dim: last dim to flatten.
    """

    __constants__ = ["start_dim", "end_dim"]

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
