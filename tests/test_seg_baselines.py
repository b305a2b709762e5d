"""Segmentation baselines of Table 4.1 (smfd_arch/seg_baselines_arch.py): UNet and UNet++.

Shapes for any size, gray / RGB input, 5 and 19 classes; parameter counts against the paper (31,401,605 and
36,643,333, Keras counts), the docs and an independent closed form; gradients; deep supervision; the option files
of Table 4.1 and the 19-class mask generator; a few training iterations through `python -m basicsr.train`.
"""
import glob
import os
import re
from pathlib import Path

import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_arch import UNet, UNetPlusPlus  # noqa: E402
from smfd_arch.blocks import BT601, count_bn_channels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / 'docs' / 'architecture.md'
PAPER = {'UNet': 31_401_605, 'UNetPlusPlus': 36_643_333}  # Table 4.1 (Keras: trainable + BN moving statistics)
TORCH = {'UNet': 31_389_829, 'UNetPlusPlus': 36_628_741}  # PyTorch parameters() of the defaults
TINY = dict(widths=(4, 8, 8))
CLASSES = {'UNet': UNet, 'UNetPlusPlus': UNetPlusPlus}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def build(name, **kwargs):
    """A full-size network on the meta device: parameter shapes only, no memory, no initialisation."""
    with torch.device('meta'):
        return CLASSES[name](**kwargs)


def keras_count(module):
    """What Keras' model.summary() reports as total: parameters + the BN moving mean and variance."""
    return n_params(module) + 2 * count_bn_channels(module)


# ---- independent closed-form counts ----
def _conv(ci, co, k):
    return ci * co * k * k + co


def _block(ci, co, bn):
    return _conv(ci, co, 3) + _conv(co, co, 3) + (8 * co if bn else 0)  # 2 BN × (gamma, beta, mean, variance)


def unet_formula(cin, k, widths, upsample, keras_bn):
    total, c = 0, cin
    for w in widths:
        total += _block(c, w, keras_bn)
        c = w
    for w in reversed(widths[:-1]):
        if upsample == 'transpose':
            total += c * w * 4 + w + _block(2 * w, w, keras_bn)
        else:
            total += _block(c + w, w, keras_bn)
        c = w
    return total + _conv(c, k, 1)


def unetpp_formula(cin, k, widths, upsample, keras_bn, heads=1):
    total = sum(_block(cin if i == 0 else widths[i - 1], w, keras_bn) for i, w in enumerate(widths))
    depth = len(widths) - 1
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            if upsample == 'transpose':
                total += widths[i + 1] * widths[i] * 4 + widths[i] + _block((j + 1) * widths[i], widths[i], keras_bn)
            else:
                total += _block(j * widths[i] + widths[i + 1], widths[i], keras_bn)
    return total + heads * _conv(widths[0], k, 1)


FORMULA = {'UNet': unet_formula, 'UNetPlusPlus': unetpp_formula}
WIDTHS = (64, 128, 256, 512, 1024)


@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
def test_default_counts_equal_the_paper_exactly(name):
    model = build(name)
    assert n_params(model) == TORCH[name]
    assert keras_count(model) == PAPER[name]  # gray input, 5 classes, BN, parameter-free upsampling
    assert keras_count(model) == FORMULA[name](1, 5, WIDTHS, 'bilinear', True)
    text = DOC.read_text()
    assert f'{PAPER[name]:,}' in text and f'{TORCH[name]:,}' in text


@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
@pytest.mark.parametrize('kwargs', [dict(num_classes=19), dict(in_channels=3), dict(upsample='transpose'),
                                    dict(upsample='nearest'), dict(batch_norm=False),
                                    dict(widths=(32, 64, 128, 256, 512), upsample='transpose', batch_norm=False)])
def test_variant_counts_match_the_closed_form(name, kwargs):
    model = build(name, **kwargs)
    args = dict(dict(in_channels=1, num_classes=5, widths=WIDTHS, upsample='bilinear', batch_norm=True), **kwargs)
    expected = FORMULA[name](args['in_channels'], args['num_classes'], args['widths'],
                             args['upsample'], args['batch_norm'])
    assert keras_count(model) == expected


def test_documented_variant_counts():
    """The numbers docs/architecture.md and the option files quote for the other standard variants."""
    text = DOC.read_text()
    counts = {
        'UNet transpose': keras_count(build('UNet', upsample='transpose')),
        'UNet++ transpose': keras_count(build('UNetPlusPlus', upsample='transpose')),
        'UNet 19': keras_count(build('UNet', num_classes=19)),
        'UNet++ 19': keras_count(build('UNetPlusPlus', num_classes=19)),
        'UNet RGB': keras_count(build('UNet', in_channels=3)),
        'UNet++ RGB': keras_count(build('UNetPlusPlus', in_channels=3)),
        'UNet no BN': keras_count(build('UNet', batch_norm=False)),
        'UNet++ no BN': keras_count(build('UNetPlusPlus', batch_norm=False)),
        'UNet Zhou': n_params(build('UNet', widths=(32, 64, 128, 256, 512), upsample='transpose', batch_norm=False)),
        'UNet++ Zhou': n_params(build('UNetPlusPlus', widths=(32, 64, 128, 256, 512), upsample='transpose',
                                      batch_norm=False)),
    }
    missing = [f'{key}: {value:,}' for key, value in counts.items() if f'{value:,}' not in text]
    assert not missing, missing
    assert n_params(build('UNet', upsample='transpose')) == 31_042_629
    assert n_params(build('UNetPlusPlus', upsample='transpose')) == 36_171_653
    assert n_params(build('UNetPlusPlus', deep_supervision=True)) == TORCH['UNetPlusPlus'] + 3 * (64 * 5 + 5)


# ---- forward ----
@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
@pytest.mark.parametrize('upsample', ['bilinear', 'nearest', 'transpose'])
@pytest.mark.parametrize('num_classes', [5, 19])
@pytest.mark.parametrize('size', [(17, 23), (32, 32), (5, 3), (1, 9)])
def test_shapes_any_size(name, upsample, num_classes, size):
    torch.manual_seed(0)
    model = CLASSES[name](num_classes=num_classes, upsample=upsample, **TINY).eval()
    for channels in (1, 3):
        with torch.no_grad():
            out = model(torch.rand(2, channels, *size))
        assert out.shape == (2, num_classes, *size)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
def test_rgb_is_converted_to_gray_with_bt601(name):
    torch.manual_seed(0)
    model = CLASSES[name](**TINY).eval()
    rgb = torch.rand(2, 3, 20, 12)
    gray = BT601[0] * rgb[:, 0:1] + BT601[1] * rgb[:, 1:2] + BT601[2] * rgb[:, 2:3]
    with torch.no_grad():
        torch.testing.assert_close(model(rgb), model(gray))


@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
def test_rgb_model_takes_rgb(name):
    model = CLASSES[name](in_channels=3, **TINY).eval()
    assert model(torch.rand(1, 3, 9, 9)).shape == (1, 5, 9, 9)
    with pytest.raises(ValueError, match='expected 3 input channels, got 1'):
        model(torch.rand(1, 1, 9, 9))


@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
@pytest.mark.parametrize('upsample', ['bilinear', 'transpose'])
def test_gradients_reach_every_parameter(name, upsample):
    torch.manual_seed(0)
    model = CLASSES[name](num_classes=19, upsample=upsample, **TINY)
    x = torch.rand(2, 3, 19, 21, requires_grad=True)
    model(x).logsumexp(dim=1).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unetpp_nested_nodes_and_deep_supervision():
    torch.manual_seed(0)
    plain = UNetPlusPlus(widths=(4, 8, 8, 8))
    assert sorted(plain.nodes) == ['0_1', '0_2', '0_3', '1_1', '1_2', '2_1']  # X(i,j), i + j <= depth
    assert plain.nodes['0_3'][0].in_channels == 3 * 4 + 8  # X(0,0..2) + up(X(1,2)): the dense skip pathway
    deep = UNetPlusPlus(widths=(4, 8, 8, 8), deep_supervision=True).eval()
    assert len(deep.heads) == 3
    x = torch.rand(2, 1, 11, 13)
    with torch.no_grad():
        heads = deep.forward_heads(x)
        assert len(heads) == 3 and all(h.shape == (2, 5, 11, 13) for h in heads)
        torch.testing.assert_close(deep(x), torch.stack(heads).mean(dim=0))
        assert len(plain.eval().forward_heads(x)) == 1


@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
@pytest.mark.parametrize('kwargs, message', [
    (dict(upsample='pixelshuffle'), "upsample='pixelshuffle' is not valid"),
    (dict(widths=[64]), 'at least 2 levels'),
    (dict(widths=[64, 0]), 'widths must be a positive int'),
    (dict(num_classes=0), 'num_classes must be a positive int'),
    (dict(in_channels=2.0), 'in_channels must be a positive int'),
])
def test_invalid_arguments(name, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CLASSES[name](**kwargs)


def test_wrong_input_is_a_clear_error():
    model = UNet(**TINY)
    with pytest.raises(ValueError, match=r'UNet: expected 1 input channels \(or 3, converted to gray\), got 2'):
        model(torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError, match='UNetPlusPlus: expected a'):
        UNetPlusPlus(**TINY)(torch.rand(2, 8, 8))


# ---- registry and option files ----
def read_option(path):
    """Read as BasicSR's entries do (the plugin's one YAML reader)."""
    from smfd_data.option_file import read_option as read_yaml
    return read_yaml(path)


@pytest.mark.parametrize('fname, name', [('train_unet_baseline.yml', 'UNet'),
                                         ('train_unetpp_baseline.yml', 'UNetPlusPlus')])
def test_table_4_1_option_files(fname, name):
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY
    assert ARCH_REGISTRY.get(name) is CLASSES[name]
    path = ROOT / 'options' / fname
    header = path.read_text().splitlines()[0]
    assert header.startswith('# Table 4.1 baseline, row "') and f'{PAPER[name]:,}' in header
    opt = read_option(path)
    reference = read_option(ROOT / 'options' / 'train_mask_generator.yml')
    assert opt['model_type'] == reference['model_type'] == 'SMFDMaskGeneratorModel'
    # everything but the name and the network is the mask generator's protocol
    for key in ('datasets', 'train', 'val', 'logger', 'manual_seed', 'num_gpu'):
        assert opt[key] == reference[key], key
    net = build_network(dict(opt['network_g']))
    assert isinstance(net, CLASSES[name]) and keras_count(net) == PAPER[name]


def test_19_class_mask_generator_option_file():
    from basicsr.archs import build_network

    from smfd_data.face_dataset import parse_grouping
    from smfd_data.face_labels import NUM_CELEBAMASK_CLASSES
    opt = read_option(ROOT / 'options' / 'train_mask_generator_19class.yml')
    reference = read_option(ROOT / 'options' / 'train_mask_generator.yml')
    for phase in ('train', 'val'):
        dataset = opt['datasets'][phase]
        assert 'label_groups' not in dataset
        lut, k = parse_grouping(dataset)
        assert k == NUM_CELEBAMASK_CLASSES == 19 and lut.tolist() == list(range(19))  # ungrouped
        assert {**dataset, 'num_classes': 5} == reference['datasets'][phase]
    assert opt['network_g']['num_classes'] == 19
    assert {**opt['network_g'], 'num_classes': 5} == reference['network_g']
    assert opt['train'] == reference['train'] and opt['val'] == reference['val']
    net = build_network(dict(opt['network_g'])).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 16, 16)).shape == (1, 19, 16, 16)


# ---- training through BasicSR's own entry ----
TINY_NETS = {'UNet': {'type': 'UNet', 'widths': [4, 8, 8]},
             'UNetPlusPlus': {'type': 'UNetPlusPlus', 'widths': [4, 8, 8], 'deep_supervision': True}}


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    from tests.test_models import make_prepared
    root = tmp_path_factory.mktemp('seg_baselines')
    make_prepared(str(root / 'data'), n=6, n_val=2)
    return root


@pytest.mark.parametrize('name', ['UNet', 'UNetPlusPlus'])
def test_baselines_train_through_basicsr_train(prepared, name):
    from tests.helpers import run_python, write_yaml
    from tests.test_models import MASK_METRICS, train_opt
    opt = train_opt('data', f'seg_{name}', 'SMFDMaskGeneratorModel', dict(TINY_NETS[name], num_classes=5),
                    MASK_METRICS, total_iter=2, val_freq=2, protocol={'save_best': {}})
    opt['val']['save_img'] = False
    run_python(['-m', 'basicsr.train', '-opt', write_yaml(prepared / f'{name}.yml', opt)], cwd=prepared)
    exp = prepared / 'experiments' / opt['name']
    weights = torch.load(exp / 'models' / 'net_g_2.pth', weights_only=True)
    net = CLASSES[name](**{k: v for k, v in TINY_NETS[name].items() if k != 'type'})
    net.load_state_dict(weights['params'])  # the checkpoint is this arch's
    log = ''.join(Path(p).read_text() for p in glob.glob(str(exp / 'train_*.log')))
    dice = re.findall(r'# dice: ([0-9.]+)', log)
    assert dice and all(0 <= float(d) <= 1 for d in dice), log[-2000:]
    assert re.search(r'l_dice: [0-9.e+-]+', log)
    assert os.path.isfile(exp / 'models' / 'net_g_best.pth')
