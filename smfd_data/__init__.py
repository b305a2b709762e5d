"""Everything between a file on disk and a training sample (paper §3.2, §3.4.1, §3.4.2, §3.4.6.1).

Importing registers the datasets in BasicSR's DATASET_REGISTRY.
"""
from smfd_data.face_dataset import SMFDDegradedFolderDataset, SMFDFaceDataset

__all__ = ['SMFDDegradedFolderDataset', 'SMFDFaceDataset']
