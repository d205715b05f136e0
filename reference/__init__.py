"""simple-net's reference network: numpy only, backward pass derived by hand.

Readable, not optimised for anything but clarity and a fair speed. It never imports JAX.

    from reference import Network
    net = Network([4, 8, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    E, dW, dX = net.gradients(X, T)
"""

from .activations import ACTIVATIONS, Activation, Softmax, get_activation
from .errors import DivergenceError, TooLargeError
from .losses import LOSSES, Loss, get_loss
from .network import Network
from .passes import Trace, backward_pass, forward_pass, network_loss

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "Activation",
    "DivergenceError",
    "Loss",
    "Network",
    "Softmax",
    "TooLargeError",
    "Trace",
    "backward_pass",
    "forward_pass",
    "get_activation",
    "get_loss",
    "network_loss",
]
