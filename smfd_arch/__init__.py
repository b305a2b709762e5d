"""SMFD networks (paper §3.4.3–3.4.5). Importing registers them in BasicSR's ARCH_REGISTRY."""
from smfd_arch.mask_generator_arch import MaskGenerator
from smfd_arch.smfd_unet_arch import SMFDUNet

__all__ = ['MaskGenerator', 'SMFDUNet']
