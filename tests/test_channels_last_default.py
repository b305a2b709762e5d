"""Inference batches on CPU are channels_last by default (issue 9 item 2), with the same results as NCHW."""
import numpy as np
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_arch import MaskGenerator, SMFDUNet  # noqa: E402
from smfd_inference.cascade import SMFDCascade  # noqa: E402
from smfd_inference.restorer import images_to_batch, restore_faces  # noqa: E402
from tests.helpers import TINY_MASK, TINY_UNET  # noqa: E402


def test_images_to_batch_is_channels_last_on_cpu_with_the_same_values():
    rng = np.random.default_rng(0)
    faces = [rng.random((6, 10, 3), dtype=np.float32) for _ in range(3)]
    nhwc, nchw = images_to_batch(faces, 'cpu'), images_to_batch(faces, 'cpu', channels_last=False)
    assert nhwc.shape == nchw.shape == (3, 3, 6, 10) and nhwc.dtype == torch.float32
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()
    assert nchw.is_contiguous() and torch.equal(nhwc, nchw)
    assert torch.equal(nchw[1, 2], torch.from_numpy(faces[1][..., 2]))  # channel 2 of face 1 = its blue plane


def test_cascade_gives_the_same_faces_from_either_layout():
    torch.manual_seed(0)
    cascade = SMFDCascade(SMFDUNet(**TINY_UNET).eval(), MaskGenerator(**TINY_MASK).eval())
    rng = np.random.default_rng(1)
    faces = [rng.random((32, 32, 3), dtype=np.float32) for _ in range(2)]
    outputs, labels = restore_faces(cascade, faces, batch_size=2)
    with torch.no_grad():
        expected, expected_labels = cascade.restore(images_to_batch(faces, 'cpu', channels_last=False))
    for out, ref in zip(outputs, expected.permute(0, 2, 3, 1).numpy()):
        assert out.shape == (32, 32, 3) and np.allclose(out, ref, atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(labels, expected_labels.to(torch.uint8).numpy()))
