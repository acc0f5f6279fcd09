"""Flash executor by ODE distillation (see ode.py)."""
from aha_wam.distill.ode import CAPTURE, PATHS, Distiller, anchor_weights  # noqa: F401
