"""Closed-loop evaluation in the ROS-free simulator with the deployed asynchronous schedule."""
