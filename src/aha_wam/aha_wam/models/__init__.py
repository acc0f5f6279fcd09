"""AHA-WAM networks: image encoder, video planner, action executor, OVCR, flow matching, memory."""
from aha_wam.models.executor import ActionExecutor, PreparedChunk
from aha_wam.models.flow import FlowMatchSchedule, euler_sample, shift_sigma
from aha_wam.models.memory import KVMemory
from aha_wam.models.ovcr import OvcrRouter
from aha_wam.models.planner import VideoPlanner
from aha_wam.models.vae import ConvAutoencoder, ImageEncoder, build_image_encoder, register_image_encoder
from aha_wam.models.wan22 import Wan22Encoder

register_image_encoder('wan22', Wan22Encoder)     # the Wan2.2 VAE via diffusers (imported on first use)

__all__ = ['ActionExecutor', 'PreparedChunk', 'FlowMatchSchedule', 'euler_sample', 'shift_sigma', 'KVMemory',
           'OvcrRouter', 'VideoPlanner', 'ConvAutoencoder', 'ImageEncoder', 'build_image_encoder',
           'register_image_encoder', 'Wan22Encoder']
