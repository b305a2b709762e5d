"""What BasicSR's training loop drives. Importing registers models, losses and metrics."""
from smfd_models.losses import SMFDCrossEntropyLoss, SMFDDiceLoss
from smfd_models.mask_generator_model import SMFDMaskGeneratorModel
from smfd_models.metrics import smfd_dice, smfd_jaccard, smfd_lpips, smfd_mse, smfd_region_psnr, smfd_region_ssim
from smfd_models.smfd_model import SMFDModel

__all__ = [
    'SMFDCrossEntropyLoss', 'SMFDDiceLoss', 'SMFDMaskGeneratorModel', 'SMFDModel', 'smfd_dice', 'smfd_jaccard',
    'smfd_lpips', 'smfd_mse', 'smfd_region_psnr', 'smfd_region_ssim'
]
