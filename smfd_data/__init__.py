"""Everything between a file on disk and a training sample (paper §3.2, §3.4.1, §3.4.2, §3.4.6.1).

Kept import-light: ``import smfd_data.degradation`` must not pull in torch or basicsr. The registered datasets
are imported by ``smfd_autoload`` (or on first attribute access here).
"""

_LAZY = {'SMFDFaceDataset': 'smfd_data.face_dataset', 'SMFDDegradedFolderDataset': 'smfd_data.face_dataset'}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
