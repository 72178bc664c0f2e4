"""Adversarial attacks on every scheme (Captum's ``captum.robust``) and the domain audit."""

from .attack import DEFAULT_EPSILON, AttackResult, attack_cells, iter_attack_cells
from .audit import AuditCells, flip_rate_curve, iter_audit, prepare_audit_cells, run_audit
from .models import AttackError, EncoderThenHead, SchemeModel, load_scheme

__all__ = [
    "DEFAULT_EPSILON",
    "AttackError",
    "AttackResult",
    "AuditCells",
    "EncoderThenHead",
    "SchemeModel",
    "attack_cells",
    "flip_rate_curve",
    "iter_attack_cells",
    "iter_audit",
    "load_scheme",
    "prepare_audit_cells",
    "run_audit",
]
