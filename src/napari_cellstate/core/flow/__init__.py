"""The whole paper in one command: a resumable run of every step from one config, its report, and scale-out."""

from .config import STEPS, FlowConfig, FlowConfigError, default_config_text, read_flow_config
from .runner import FlowResult, iter_run_flow, read_state, run_flow
from .steps import symbolic_available

__all__ = [
    "STEPS",
    "FlowConfig",
    "FlowConfigError",
    "FlowResult",
    "default_config_text",
    "iter_run_flow",
    "read_flow_config",
    "read_state",
    "run_flow",
    "symbolic_available",
]
