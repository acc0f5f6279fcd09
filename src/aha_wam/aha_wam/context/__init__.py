"""The planner context: per-layer K/V of the current video frame and how it travels between processes."""
from aha_wam.context.layout import ContextLayout, PlannerContext

__all__ = ['ContextLayout', 'PlannerContext']
