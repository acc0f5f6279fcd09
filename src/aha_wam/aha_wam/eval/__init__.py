"""`aha-wam eval-sim`: the deployed sessions on the ClosedLoop in the ROS-free simulator (aha_wam.runtime.loop)."""
