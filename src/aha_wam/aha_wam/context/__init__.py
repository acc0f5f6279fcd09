"""The planner context: per-layer K/V of the current video frame and how it travels between processes."""
from aha_wam.context.layout import ContextLayout, PlannerContext
from aha_wam.context.descriptor import ContextDescriptor
from aha_wam.context.rejection import REJECTION_REASONS, Rejection
from aha_wam.context.channel import ContextReader, ContextWriter
from aha_wam.context.inbox import ContextInbox, Delivery, planner_segment_name
from aha_wam.context.shm_ring import RingError, SegmentBusy, ShmRing, segment_name, validate_segment_name

__all__ = ['ContextLayout', 'PlannerContext', 'ContextDescriptor', 'ContextWriter', 'ContextReader', 'Rejection',
           'REJECTION_REASONS', 'ContextInbox', 'Delivery', 'planner_segment_name', 'ShmRing', 'RingError',
           'SegmentBusy', 'segment_name', 'validate_segment_name']
