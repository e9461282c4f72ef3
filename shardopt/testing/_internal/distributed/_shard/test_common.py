"""SimpleMegatronLM (torch.testing._internal.distributed._shard.test_common): two Linear
layers with a GELU between them, the model torch's sharding-plan tests shard."""
import shardopt
import shardopt.nn as nn
from shardopt.sharded_tensor import ShardedTensor

from ._device import device_type

__all__ = ["SimpleMegatronLM"]


class SimpleMegatronLM(nn.Module):
    def __init__(self, linear_size, rank=None, dtype=shardopt.float32):
        super().__init__()
        self.fc1 = nn.Linear(*linear_size[0], dtype=dtype)
        self.gelu = nn.GELU()
        self.fc2 = nn.Linear(*linear_size[1], dtype=dtype)
        if rank is not None:
            dev = shardopt.device(f"cuda:{rank}") if device_type() == "cuda" else shardopt.device("cpu")
            self.fc1.to(dev)
            self.fc2.to(dev)

    def forward(self, inp):
        return self.fc2(self.gelu(self.fc1(inp)))

    def get_weights(self):
        w1, w2 = self.fc1.weight, self.fc2.weight
        return (w1.local_tensor() if isinstance(w1, ShardedTensor) else w1,
                w2.local_tensor() if isinstance(w2, ShardedTensor) else w2)

    def get_biases(self):
        return (self.fc1.bias, self.fc2.bias)

    def get_weight_grads(self):
        return (self.fc1.weight.grad, self.fc2.weight.grad)

    def get_bias_grads(self):
        return (self.fc1.bias.grad, self.fc2.bias.grad)
