"""AHA-WAM executor node package."""
