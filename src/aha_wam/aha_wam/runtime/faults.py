"""Executor fault flags (ROS-free mirror of the FAULT_* constants of aha_wam_msgs/ExecutorStatus)."""
import enum


class Fault(enum.IntFlag):
    NONE = 0
    NO_CONTEXT = 1           # no valid planner context yet: the arms never move
    STALE_CONTEXT = 2
    CONTEXT_REJECTED = 4
    STALE_IMAGE = 8
    STALE_JOINTS = 16
    NONFINITE_ACTION = 32
    JOINT_LIMIT = 64
    OVERRUN = 128
    INFERENCE_ERROR = 256

    @property
    def names(self) -> list[str]:
        return [f.name for f in Fault if f and f in self]


# Faults after which the executor must not send a new chunk (the arms hold). OVERRUN only reports.
BLOCKING = (Fault.NO_CONTEXT | Fault.STALE_CONTEXT | Fault.STALE_IMAGE | Fault.STALE_JOINTS
            | Fault.NONFINITE_ACTION | Fault.JOINT_LIMIT | Fault.INFERENCE_ERROR)
