"""Executor fault flags (ROS-free mirror of the FAULT_* constants of aha_wam_msgs/ExecutorStatus).

One meaning per flag, the same in the executor node, the ClosedLoop and every report.
"""
import enum


class Fault(enum.IntFlag):
    NONE = 0
    NO_CONTEXT = 1           # no valid planner context yet: the arms never move
    STALE_CONTEXT = 2        # newest valid context older than max_context_age
    CONTEXT_REJECTED = 4     # the last descriptor examined failed validation (the last good context stays)
    STALE_IMAGE = 8          # newest image older than max_image_age (or none yet)
    STALE_JOINTS = 16        # a joint state older than max_joint_state_age, or missing
    NONFINITE_ACTION = 32    # the predicted chunk held NaN/Inf: discarded
    JOINT_LIMIT = 64         # the predicted chunk left the joint limits beyond tolerance: discarded
    OVERRUN = 128            # the update took longer than the control period (timing only)
    INFERENCE_ERROR = 256    # the policy raised; see `detail`
    LATE_CHUNK = 512         # the chunk was ready too late to be worth sending; the previous one runs on

    @property
    def names(self) -> list[str]:
        return [f.name for f in Fault if f and f in self]


# Faults after which the executor must not send a new chunk (the arms hold). OVERRUN and LATE_CHUNK only
# report: the previous chunk keeps running.
BLOCKING = (Fault.NO_CONTEXT | Fault.STALE_CONTEXT | Fault.STALE_IMAGE | Fault.STALE_JOINTS
            | Fault.NONFINITE_ACTION | Fault.JOINT_LIMIT | Fault.INFERENCE_ERROR)
