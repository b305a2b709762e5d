"""SMFD networks (paper §3.4.3–3.4.5) and the Table 4.1 segmentation baselines. Importing registers them in
BasicSR's ARCH_REGISTRY."""
from smfd_arch.mask_generator_arch import MaskGenerator
from smfd_arch.seg_baselines_arch import UNet, UNetPlusPlus
from smfd_arch.smfd_unet_arch import SMFDUNet

__all__ = ['MaskGenerator', 'SMFDUNet', 'UNet', 'UNetPlusPlus']
