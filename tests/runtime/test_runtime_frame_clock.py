"""FrameClock: the executor's phase lock to the camera, with a real thread delivering frames."""
import threading
import time

import pytest

from aha_wam.runtime.rate import FrameClock


class FakeTime:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_period_and_due_time_follow_the_arrivals():
    clock = FakeTime()
    frames = FrameClock(0.015, clock=clock)
    assert frames.period() is None and frames.wait_if_imminent() == 0.0     # unknown period: never wait
    for t in (0.0, 0.033, 0.067, 0.100):
        clock.t = t
        frames.arrived()
    assert frames.period() == pytest.approx(0.033, abs=1e-3)
    clock.t = 0.110
    assert frames.due_in() == pytest.approx(0.023, abs=1e-3)
    assert frames.wait_if_imminent() == 0.0                                  # 23 ms > 15 ms: do not wait
    clock.t = 0.140
    assert frames.due_in() < 0 and frames.wait_if_imminent() == 0.0          # overdue: do not wait either


def test_waits_for_an_imminent_frame_and_no_longer():
    frames = FrameClock(0.060)
    period = 0.100                                 # generous margins: sleeps overshoot on a loaded machine
    for _ in range(4):
        frames.arrived()
        time.sleep(period)
    # The 5th frame is overdue now; deliver it, then the 6th is due 40 ms later.
    frames.arrived()
    time.sleep(period - 0.040)                     # 40 ms before the next frame: within max_wait
    timer = threading.Timer(0.020, frames.arrived)
    timer.start()
    waited = frames.wait_if_imminent()
    timer.join()
    assert 0.010 < waited < 0.040                  # returned on the arrival, well before the timeout
    # A frame that never comes: the wait is bounded by max_wait.
    time.sleep(period - 0.040)
    t0 = time.monotonic()
    frames.wait_if_imminent()
    assert time.monotonic() - t0 <= 0.060 + 0.030


def test_zero_wait_disables_the_lock_and_negative_is_refused():
    frames = FrameClock(0.0)
    for _ in range(4):
        frames.arrived()
    assert frames.wait_if_imminent() == 0.0
    with pytest.raises(ValueError, match='max_wait'):
        FrameClock(-0.01)
