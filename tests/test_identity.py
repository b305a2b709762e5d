"""smfd_eval.identity: the benchmark's identity similarity (ArcFace embeddings of output vs GT), random weights."""
import sys

import numpy as np
import pytest
import torch

from smfd_eval import identity
from smfd_eval.identity import IdentityEmbedder, IdentityUnavailable, cosine_similarity, identity_input


def random_arcface(seed=0):
    pytest.importorskip('gfpgan.archs.arcface_arch', reason='pip install --no-deps gfpgan==1.3.8')
    torch.manual_seed(seed)
    return identity.build_arcface()


def face(seed, size=64):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.uint8)
    return np.kron(img, np.ones((8, 8, 1), np.uint8))  # blocky, so a 128² resize keeps its structure


def test_cosine_similarity_of_known_vectors():
    assert cosine_similarity([1, 0], [0, 1]) == 0
    assert cosine_similarity([1, 2, 3], [2, 4, 6]) == pytest.approx(1)
    assert cosine_similarity([1, 0], [-3, 0]) == -1
    assert cosine_similarity([3, 4], [4, 3]) == pytest.approx(24 / 25)
    assert np.isnan(cosine_similarity([0, 0], [1, 2]))


def test_input_is_gfpgans_gray_in_minus_one_one_at_128():
    rgb = (200, 100, 50)
    img = np.empty((40, 60, 3), np.uint8)
    img[:] = rgb
    x = identity_input([img, np.zeros((256, 256, 3), np.uint8)])
    assert x.shape == (2, 1, 128, 128) and x.dtype == torch.float32
    # gray of the [-1, 1] image with GFPGAN's weights 0.2989 / 0.5870 / 0.1140
    expected = sum(w * (c / 127.5 - 1) for w, c in zip((0.2989, 0.5870, 0.1140), rgb))
    assert torch.allclose(x[0], torch.full_like(x[0], expected), atol=1e-6)
    assert torch.allclose(x[1], torch.full_like(x[1], -0.9999), atol=1e-6)
    with pytest.raises(ValueError, match='uint8 RGB'):
        identity_input([img.astype(np.float32)])


def test_identical_faces_score_one_and_others_less():
    embedder = IdentityEmbedder(random_arcface())
    a, b = face(1), face(2)
    assert embedder.embed([a, b]).shape == (2, 512)
    assert embedder.similarity(a, a.copy()) == pytest.approx(1.0, abs=1e-9)
    other = embedder.similarity(b, a)
    assert -1 <= other < 0.999
    # the GT embedding is computed once and reused; the answer does not change
    assert embedder.similarity(b, a) == other and len(embedder._gt_cache) == 1
    # a noisy copy stays closer to the original than an unrelated face does
    noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    assert other < embedder.similarity(noisy, a) < 1


def test_weights_load_from_a_file_without_running_code(tmp_path):
    net = random_arcface(seed=3)
    path = tmp_path / 'arcface.pth'
    torch.save({f'module.{k}': v for k, v in net.state_dict().items()}, path)  # as DataParallel saves it
    loaded = identity.load_arcface(str(path))
    a = face(4)
    assert np.allclose(IdentityEmbedder(loaded).embed([a]), IdentityEmbedder(net).embed([a]))

    bad = tmp_path / 'pickled.pth'
    torch.save({'params': net.state_dict(), 'extra': np.random.default_rng(0)}, bad)  # an arbitrary object
    with pytest.raises(IdentityUnavailable, match='refusing'):
        identity.load_arcface(str(bad))


def test_offline_and_missing_package_give_reasons(tmp_path, monkeypatch):
    random_arcface()  # needs gfpgan for the first half
    with pytest.raises(IdentityUnavailable) as err:
        identity.load_arcface(download=False, cache_dir=str(tmp_path))
    reason = str(err.value)
    assert str(tmp_path / 'gfpgan' / 'arcface_resnet18.pth') in reason and identity.ARCFACE_URL in reason
    assert not (tmp_path / 'gfpgan' / 'arcface_resnet18.pth').exists()
    weights = tmp_path / 'arcface.pth'
    torch.save(identity.build_arcface().state_dict(), weights)
    monkeypatch.setitem(sys.modules, 'gfpgan.archs.arcface_arch', None)  # as if gfpgan were not installed
    with pytest.raises(IdentityUnavailable, match='pip install --no-deps gfpgan==1.3.8'):
        identity.load_arcface(str(weights))
