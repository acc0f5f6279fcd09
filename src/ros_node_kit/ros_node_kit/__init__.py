"""ros_node_kit: one node style for the whole workspace (piper_bringup, the planner and executor nodes).

Small modules: `spin` (run_node and the exit convention), `params` (parameters with ranges), `loop`
(DeadlineLoop), `polled` (PolledSubscription), `stamps`, and `compat` (the rclpy API of Humble with
fallbacks for newer distros). It depends on rclpy only, so any package may use it without pulling the
AHA-WAM core or the robot floor.
"""
from .loop import DeadlineLoop
from .params import ParameterError, declare, declare_table, descriptor
from .polled import PolledSubscription
from .spin import make_executor, run_node
from .stamps import sec_to_stamp, stamp_to_sec

# managed.py (ManagedLoopNode) is imported by name: it pulls rclpy.lifecycle, which plain nodes do not need.
__all__ = ['DeadlineLoop', 'ParameterError', 'PolledSubscription', 'declare', 'declare_table', 'descriptor', 'make_executor',
           'run_node', 'sec_to_stamp', 'stamp_to_sec']
