"""The dataset readers' one error type (bags have their own `aha_wam.data.rosbag.BagError`)."""


class DatasetError(ValueError):
    """A dataset file or directory is malformed; the one-line message names the file and the key."""
