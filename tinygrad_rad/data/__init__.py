"""Datasets, transforms and the DataLoader.

    >>> from tinygrad_rad.data import load_medmnist, DataLoader
    >>> train = load_medmnist("pneumoniamnist", "train", data_dir="../shared/data")
    >>> for x, y in DataLoader(train, batch_size=128, shuffle=True, seed=0):
    ...     pass                      # x: Tensor (128, 1, 28, 28) float32, y: Tensor (128,) int64
    >>> vol = load_medmnist("vesselmnist3d", "train", data_dir="../shared/data")   # 3D: (1, 28, 28, 28) items
"""

from __future__ import annotations

from . import transforms, transforms3d
from .download import DownloadError, download_url, md5sum, resolve_data_dir, user_cache_dir
from .folder import CSVImageDataset, ImageFolder
from .io import (
    ImageReadError,
    NpzFile,
    NumpyFileError,
    load_npy,
    load_npz,
    open_npz,
    read_dicom,
    read_image,
    read_nifti,
    read_nifti_slices,
    read_npy_image,
    read_picture,
)
from .loader import DataLoader, Dataset, EmptySplitError, TensorDataset, check_not_empty, default_collate
from .medmnist import (
    ALL_FLAGS,
    FLAGS,
    FLAGS_3D,
    INFO,
    MedMNIST,
    MedMNIST3D,
    MedMNISTFileError,
    download_medmnist,
    find_medmnist_file,
    get_info,
    load_medmnist,
    medmnist_filename,
)
from .volumes import (
    DicomSeriesError,
    Volume,
    read_dicom_series,
    read_nifti_volume,
    read_volume,
    resample_volume,
)

__all__ = [
    "CSVImageDataset",
    "ImageFolder",
    "ImageReadError",
    "NpzFile",
    "NumpyFileError",
    "load_npy",
    "load_npz",
    "open_npz",
    "EmptySplitError",
    "check_not_empty",
    "read_dicom",
    "read_image",
    "read_nifti",
    "read_nifti_slices",
    "read_npy_image",
    "read_picture",
    "transforms",
    "transforms3d",
    "DicomSeriesError",
    "Volume",
    "read_dicom_series",
    "read_nifti_volume",
    "read_volume",
    "resample_volume",
    "ALL_FLAGS",
    "FLAGS",
    "FLAGS_3D",
    "INFO",
    "DataLoader",
    "Dataset",
    "DownloadError",
    "MedMNIST",
    "MedMNIST3D",
    "MedMNISTFileError",
    "TensorDataset",
    "default_collate",
    "download_medmnist",
    "download_url",
    "find_medmnist_file",
    "get_info",
    "load_medmnist",
    "md5sum",
    "medmnist_filename",
    "resolve_data_dir",
    "user_cache_dir",
]
