"""Offline evaluation by bag replay (ROS-free): `aha-wam eval-bag`.

    (reading:    aha_wam.data.topic_map and aha_wam.data.rosbag, the suite's one reader of recorded data)
    replay.py    drive the deployed planner/executor sessions on the ClosedLoop (aha_wam.runtime.loop) and the
                 trajectory streamer core on a clock that follows the bag
    metrics.py   action error, chunk discontinuity, gripper timing, end-effector paths, distributions
    report.py    report.md / report.html, PNG plots, summary.json
    evaluate.py  the command (`cmd_eval_bag`, `evaluate_bags`)
"""
