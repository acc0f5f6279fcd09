"""Where rclpy moved things between Humble (the deployment target) and newer distros.

Every name here exists on Humble; the fallbacks keep Iron, Jazzy and Kilted working. Import from here,
never from the moved module directly (tests/foundation/test_humble_api.py checks it).
"""
from __future__ import annotations

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble: the same class lives in rclpy.qos_event
    from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef]

__all__ = ['SubscriptionEventCallbacks']
