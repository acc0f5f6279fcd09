"""Demonstrations -> training tensors.

Episode (one demonstration, `episode.Episode`, saved as `episode_<task>_<seed>.npz` without pickles):

    proprio      float32 [T, 14]  measured joints at control step t (left j1..j6 rad, gripper m, then right)
    actions      float32 [T, 14]  commanded joint targets at control step t (what the arms were told to reach)
    image_steps  int64   [N]      control step of each image (strictly increasing, first = 0)
    images       uint8   [N, H, W, 3]  ego frames at model resolution (aha_wam.preprocess.model_image)
    meta         task, task_id, seed, level, success, instruction, control_hz, source

Control step t is time t / control_hz after the episode's first image. The image "at" step t is the newest
image taken at or before t (what a deployed executor sees). Bags (`bag.py`, ROS 2 MCAP written with
`rosbags`) are resampled onto this grid.

Training cache (`cache.TrainingCache`, a directory): `index.json` (episodes, offsets into the arrays,
normalisation statistics, task table) + `data.safetensors` (all episodes concatenated). `windows.WindowSampler`
turns it into batches of the AhaWamPolicy batch contract with horizon-adaptive offsets and history frames.
"""
from aha_wam.data.episode import TASKS, Episode, load_episode, save_episode, task_id  # noqa: F401
