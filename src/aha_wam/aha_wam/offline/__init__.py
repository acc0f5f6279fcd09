"""Offline evaluation by bag replay (ROS-free): `aha-wam eval-bag`.

    topics.py    topic maps (YAML): which bag topic is the image, each arm's joint states and commands
    bagio.py     read one bag (MCAP or sqlite3, rosbags AnyReader) through a map; one BagError per bad bag
    replay.py    drive the deployed planner/executor schedule (aha_wam.eval.harness.PolicyController) and the
                 trajectory streamer core on a clock that follows the bag
    metrics.py   action error, chunk discontinuity, gripper timing, end-effector paths, distributions
    report.py    report.md / report.html, PNG plots, summary.json
    evaluate.py  the command (`cmd_eval_bag`, `evaluate_bags`)
"""
