"""AHA-WAM planner node package."""
