"""What BasicSR's training loop drives: models, losses, metrics, checkpoints, entries.

Kept import-light; the registering modules are imported by ``smfd_autoload`` (or on first attribute access).
"""

_LAZY = {
    'SMFDModel': 'smfd_models.smfd_model',
    'SMFDMaskGeneratorModel': 'smfd_models.mask_generator_model',
    'SMFDDiceLoss': 'smfd_models.losses',
    'SMFDCrossEntropyLoss': 'smfd_models.losses',
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
