"""Randomized degradation of §3.4.1 (smfd_data/degradation.py)."""
import collections
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from smfd_data.blur_kernels import trajectory_kernel
from smfd_data.degradation import (
    DegradationConfig,
    apply_degradation,
    blur_ops,
    convolve,
    count_breakdown,
    count_configurations,
    degrade,
    kernel_for_op,
    resized_shape,
    rng_for_sample,
    sample_degradation,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _image(h=48, w=40, seed=0):
    """A smooth test picture with edges (values in [0.1, 0.9])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    img = np.stack([0.5 + 0.3 * np.sin(6 * xx + c) * np.cos(4 * yy) for c in range(3)], -1)
    img[h // 3: h // 2, w // 4: w // 2] = 0.9
    return (img + 0.02 * rng.standard_normal(img.shape)).clip(0.1, 0.9).astype(np.float32)


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ config

def test_defaults_are_the_papers():
    cfg = DegradationConfig()
    assert cfg.num_layers == [1, 2, 3]
    assert cfg.sequences == ['M', 'GM', 'MG', 'GMG']
    assert cfg.gaussian_sizes == cfg.motion_sizes == [15, 21, 25, 31, 35, 41]
    assert cfg.motion_directions == ['horizontal', 'vertical', 'diagonal', 'anti_diagonal']
    assert (cfg.scale_range, cfg.scale_step, cfg.noise_range, cfg.noise_step) == ([2.0, 4.0], 0.1, [5.0, 10.0], 0.1)
    assert cfg.linear_motion_prob == cfg.trajectory_prob == cfg.disk_prob == cfg.jpeg_prob == 0.0
    assert DegradationConfig.from_dict(None) == cfg == DegradationConfig.from_dict({})
    assert DegradationConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_rejects_unknown_keys_listing_valid_ones():
    match = r"unknown degradation option\(s\) \['noise_sigma'\].*valid options: .*noise_range"
    with pytest.raises(ValueError, match=match):
        DegradationConfig.from_dict({'noise_sigma': 3, 'num_layers': [1]})


@pytest.mark.parametrize('bad, match', [
    ({'gaussian_sizes': [15, 16]}, 'gaussian_sizes: kernel sizes must be positive odd'),
    ({'motion_directions': ['up']}, "motion_directions: 'up' is not one of"),
    ({'sequences': ['GX']}, 'sequence of G'),
    ({'scale_range': [4.0, 2.0]}, 'scale_range'),
    ({'up_interpolations': ['cubic']}, "up_interpolations: 'cubic'"),
    ({'weights': {'num_layers': [1, 1]}}, r'weights.num_layers: expected 3'),
    ({'weights': {'scale_range': [1]}}, "weights: unknown field 'scale_range'"),
    ({'jpeg_prob': 1.5}, 'jpeg_prob'),
    ({'gaussian_sigma_rule': 'wide'}, 'gaussian_sigma_rule'),
])
def test_invalid_values_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        DegradationConfig.from_dict(bad)


def test_sequence_spellings_are_normalised():
    cfg = DegradationConfig.from_dict({'sequences': ['M', 'G→M', 'M->G', 'g-m-g']})
    assert cfg.sequences == ['M', 'GM', 'MG', 'GMG']


# ------------------------------------------------------------------------------------------------ counting

def test_count_paper_configuration():
    b = count_breakdown()
    assert b['per_sequence'] == {'M': 24, 'GM': 144, 'MG': 144, 'GMG': 864}
    assert b['per_layer'] == 1176
    assert b['per_num_layers'] == {1: 1176, 2: 1_382_976, 3: 1_626_379_776}
    assert b['blur'] == 1_627_763_928
    assert (b['scales'], b['noise_levels']) == (21, 51)
    assert count_configurations() == 1_743_335_166_888
    assert count_configurations() != 1_743_940_018_728  # the thesis' printed value (arithmetic slip)


def test_count_small_hand_computed_configuration():
    d = {'num_layers': [1, 2], 'sequences': ['M', 'GMG'], 'gaussian_sizes': [15, 21], 'motion_sizes': [15],
         'motion_directions': ['horizontal', 'vertical'], 'scale_range': [2.0, 2.5], 'noise_range': [5.0, 6.0],
         'noise_step': 0.5, 'down_interpolations': ['area', 'bilinear']}
    # per layer: M = 1·2 = 2, GMG = 2·2·2 = 8 → 10; blur = 10 + 10² = 110; scales 6; noise 3; 2 interpolations
    assert count_configurations(d) == 110 * 6 * 3 * 2
    # a zero weight removes a choice: M = 1, GMG = 2·1·2 = 4 → 5; blur = 5 + 25 = 30
    assert count_configurations({**d, 'weights': {'motion_directions': [1, 0]}}) == 30 * 6 * 3 * 2
    # JPEG with probability < 1: 6 qualities + "no JPEG"
    assert count_configurations({**d, 'jpeg_prob': 0.5, 'jpeg_quality_range': [90, 95]}) == 110 * 6 * 3 * 2 * 7


def test_count_refuses_continuous_extra_families():
    with pytest.raises(ValueError, match="linear_motion_prob"):
        count_configurations({'linear_motion_prob': 0.2})


# ------------------------------------------------------------------------------------------------ sampling

def test_rng_for_sample_is_seeded_by_seed_and_index():
    assert rng_for_sample(3, 7).random() == np.random.default_rng([3, 7]).random()
    assert rng_for_sample(3, 7).random() != rng_for_sample(3, 8).random()


def test_params_are_json_serialisable_and_complete():
    p = sample_degradation(DegradationConfig(jpeg_prob=1.0), rng_for_sample(0, 1))
    assert json.loads(json.dumps(p)) == p
    assert set(p) == {'version', 'layers', 'scale', 'down_interpolation', 'up_interpolation', 'noise_sigma',
                      'noise_seed', 'jpeg_quality'}
    for layer in p['layers']:
        assert [op['type'][0].upper() for op in layer['ops']] == list(layer['sequence'])
        for op in layer['ops']:
            assert set(op) == ({'type', 'size', 'sigma'} if op['type'] == 'gaussian' else {'type', 'size', 'direction'})
    assert 30 <= p['jpeg_quality'] <= 95


def test_sampling_distribution_follows_the_config():
    cfg = DegradationConfig()
    params = [sample_degradation(cfg, rng_for_sample(1, i)) for i in range(1200)]
    n_layers = collections.Counter(len(p['layers']) for p in params)
    seqs = collections.Counter(layer['sequence'] for p in params for layer in p['layers'])
    dirs = collections.Counter(op['direction'] for p in params for op in blur_ops(p) if op['type'] == 'motion')
    gsizes = collections.Counter(op['size'] for p in params for op in blur_ops(p) if op['type'] == 'gaussian')
    assert set(n_layers) == {1, 2, 3} and all(abs(c / 1200 - 1 / 3) < 0.05 for c in n_layers.values())
    total = sum(seqs.values())
    assert set(seqs) == {'M', 'GM', 'MG', 'GMG'} and all(abs(c / total - 0.25) < 0.04 for c in seqs.values())
    assert len(dirs) == 4 and set(gsizes) == {15, 21, 25, 31, 35, 41}
    scales = np.array([p['scale'] for p in params])
    noise = np.array([p['noise_sigma'] for p in params])
    assert 2.0 <= scales.min() < 2.1 and 3.9 < scales.max() <= 4.0 and abs(scales.mean() - 3.0) < 0.06
    assert 5.0 <= noise.min() < 5.1 and 9.9 < noise.max() <= 10.0
    assert len(set(scales.round(6))) > 1000  # continuous, as in the paper
    assert {op['sigma'] for p in params for op in blur_ops(p) if op['type'] == 'gaussian' and op['size'] == 15} == {2.6}


def test_weights_and_quantize():
    cfg = DegradationConfig(weights={'num_layers': [0, 0, 1], 'sequences': [1, 0, 0, 0]}, quantize=True)
    for i in range(50):
        p = sample_degradation(cfg, rng_for_sample(2, i))
        assert [layer['sequence'] for layer in p['layers']] == ['M', 'M', 'M']
        assert round(p['scale'] * 10) == pytest.approx(p['scale'] * 10, abs=1e-9)
        assert round(p['noise_sigma'] * 10) == pytest.approx(p['noise_sigma'] * 10, abs=1e-9)


def test_extra_families_replace_paper_operations():
    cfg = DegradationConfig(linear_motion_prob=0.5, trajectory_prob=0.5, disk_prob=1.0)
    ops = [op for i in range(100) for op in blur_ops(sample_degradation(cfg, rng_for_sample(0, i)))]
    types = collections.Counter(op['type'] for op in ops)
    assert set(types) == {'linear_motion', 'trajectory', 'disk'}
    out, p = degrade(_image(), cfg, rng_for_sample(0, 5))
    assert out.shape == (48, 40, 3) and 0 <= out.min() and out.max() <= 1


# ------------------------------------------------------------------------------------------------ applying

def test_same_seed_and_index_give_bit_identical_output_and_different_index_differs():
    img = _image()
    a, pa = degrade(img, None, rng_for_sample(7, 3))
    b, pb = degrade(img, None, rng_for_sample(7, 3))
    c, pc = degrade(img, None, rng_for_sample(7, 4))
    assert pa == pb and _digest(a) == _digest(b)
    assert pa != pc and _digest(a) != _digest(c)
    # applying stored (JSON round-tripped) parameters reproduces the image
    assert _digest(apply_degradation(img, json.loads(json.dumps(pa)))) == _digest(a)


def test_output_is_identical_in_another_process():
    code = ('import hashlib, sys; sys.path.insert(0, sys.argv[1]); import tests.test_degradation as t; '
            'from smfd_data.degradation import degrade, rng_for_sample; '
            'out, p = degrade(t._image(), None, rng_for_sample(7, 3)); print(t._digest(out))')
    env = dict(os.environ, PYTHONHASHSEED='123', OMP_NUM_THREADS='1')
    res = subprocess.run([sys.executable, '-c', code, REPO], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    out, _ = degrade(_image(), None, rng_for_sample(7, 3))
    assert res.stdout.strip().splitlines()[-1] == _digest(out)


def test_blur_of_an_impulse_reproduces_the_kernel():
    kernel = trajectory_kernel(21, 11)  # asymmetric: a correlation would give the kernel rotated by 180°
    assert not np.allclose(kernel, kernel[::-1, ::-1])
    img = np.zeros((41, 41, 3), np.float32)
    img[20, 20] = 1.0
    out = convolve(img, kernel)
    np.testing.assert_allclose(out[10:31, 10:31, 1], kernel, atol=1e-6)
    assert abs(out[..., 0].sum() - 1) < 1e-5


def test_blur_keeps_flat_images_flat_reflect_border():
    flat = np.full((20, 24, 3), 0.3, np.float32)
    out = convolve(flat, kernel_for_op({'type': 'motion', 'size': 41, 'direction': 'diagonal'}))
    np.testing.assert_allclose(out, 0.3, atol=1e-6)  # kernel larger than the image: borders still reflect


def test_noise_std_on_flat_grey_is_eta_over_255():
    grey = np.full((64, 64, 3), 0.5, np.float32)
    params = sample_degradation(None, rng_for_sample(0, 0))
    for eta in (5.0, 10.0):
        out = apply_degradation(grey, {**params, 'noise_sigma': eta})
        assert abs(out.mean() - 0.5) < 0.002
        assert out.std() == pytest.approx(eta / 255, rel=0.03)
        assert abs(np.corrcoef(out[..., 0].ravel(), out[..., 1].ravel())[0, 1]) < 0.05  # independent channels
    assert np.array_equal(apply_degradation(grey, {**params, 'noise_sigma': 0.0}), grey)


def test_shapes_dtypes_and_errors():
    params = sample_degradation(None, rng_for_sample(0, 2))
    img = _image()
    out = apply_degradation(img, params)
    assert out.dtype == np.float32 and out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    assert apply_degradation(img[..., 0], params).shape == (48, 40)
    assert apply_degradation(img[..., :1], params).shape == (48, 40, 1)
    assert resized_shape(64, 48, 3.0) == (21, 16) and resized_shape(3, 3, 4.0) == (1, 1)
    with pytest.raises(ValueError, match='expected a float image'):
        apply_degradation((img * 255).astype(np.uint8), params)
    with pytest.raises(ValueError, match='unknown blur operation'):
        kernel_for_op({'type': 'box', 'size': 3})
    k = kernel_for_op({'type': 'gaussian', 'size': 15, 'sigma': 2.6})
    with pytest.raises(ValueError):
        k[0, 0] = 1.0  # shared cache entry is read-only


def test_degradation_actually_blurs():
    img = _image(64, 64)
    out = apply_degradation(img, {**sample_degradation(None, rng_for_sample(0, 9)), 'noise_sigma': 0.0})
    grad = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
    assert grad(out) < 0.5 * grad(img)


def test_jpeg_quantises_to_8_bit():
    out, p = degrade(_image(), DegradationConfig(jpeg_prob=1.0), rng_for_sample(0, 4))
    assert p['jpeg_quality'] is not None
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)


# ------------------------------------------------------------------------------------------------ script

def test_count_script_reads_the_option_file(tmp_path, capsys):
    from smfd_data.degradation import count_main  # what scripts/count_degradations.py runs
    paper = tmp_path / 'paper.yml'
    paper.write_text('name: x\ndatasets:\n  train:\n    type: SMFDFaceDataset\n'
                     '  val:\n    degradation: {num_layers: [1]}\n')  # only train counts
    assert count_main(['-opt', str(paper)]) == 0
    out = capsys.readouterr().out
    assert 'total                 1,743,335,166,888' in out and '= 1,176' in out
    small = tmp_path / 'small.yml'
    small.write_text('datasets:\n  train:\n    degradation:\n      num_layers: [1]\n      sequences: [M]\n'
                     '      noise_range: [5.0, 5.0]\n')
    assert count_main(['-opt', str(small)]) == 0
    assert 'total                 504\n' in capsys.readouterr().out  # 24 motion kernels × 21 scales × 1 noise level
    bad = tmp_path / 'bad.yml'
    bad.write_text('datasets:\n  train:\n    degradation: {noise: 3}\n')
    assert count_main(['-opt', str(bad)]) == 2
    err = capsys.readouterr().err
    assert 'bad.yml: datasets.train.degradation: unknown degradation option(s)' in err
    assert count_main(['-opt', str(tmp_path / 'missing.yml')]) == 2
    assert 'option file not found' in capsys.readouterr().err
