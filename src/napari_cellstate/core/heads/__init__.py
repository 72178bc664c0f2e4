"""Classification heads (Schemes 1-3): models, RigL sparse training, pruning, training and analysis."""

from ._files import check_head_inputs, load_head, save_head
from ._model import CNNClassifier, MLPHead

__all__ = ["CNNClassifier", "MLPHead", "check_head_inputs", "load_head", "save_head"]
