"""Deployment-time logic around the policy (ROS-free): chunk hand-over timing and safety checks."""
