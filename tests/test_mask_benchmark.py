"""scripts/mask_benchmark.py (smfd_eval/mask_benchmark.py): Table 4.1 on one test set, 19 and 5 classes."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_arch.blocks import count_bn_channels, count_parameters  # noqa: E402
from smfd_data.degraded_dataset import write_degraded_set  # noqa: E402
from smfd_data.face_labels import grouping_lut  # noqa: E402
from smfd_eval import mask_benchmark  # noqa: E402
from smfd_models.checkpoint import atomic_torch_save  # noqa: E402
from smfd_models.metrics import smfd_dice, smfd_jaccard  # noqa: E402
from tests.helpers import write_yaml  # noqa: E402
from tests.test_face_dataset import dataset_opt, make_faces  # noqa: E402

NETS = {'ours': {'type': 'MaskGenerator', 'encoder_widths': [4, 8], 'decoder_widths': [8], 'final_width': 4,
                 'dense_layers': 1, 'growth': 2, 'growth_ratio': None, 'head_channels': 4, 'cbam_reduction': 2,
                 'num_classes': 5},
        'unet19': {'type': 'UNet', 'widths': [4, 8, 8], 'num_classes': 19},
        'unetpp': {'type': 'UNetPlusPlus', 'widths': [4, 8, 8], 'num_classes': 5, 'deep_supervision': True}}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from basicsr.archs import build_network
    root = tmp_path_factory.mktemp('maskbench')
    faces = make_faces(root / 'faces', n=3)
    opt_path = write_yaml(root / 'opt.yml', {'datasets': {'test_1': dataset_opt(faces, name='test')}})
    sets = {}
    for k in (19, None):
        sets[k or 5] = str(root / f'set{k or 5}')
        write_degraded_set(opt_path, sets[k or 5], kernels=False, num_classes=k)
    specs = []
    torch.manual_seed(0)
    for name, net_opt in NETS.items():
        net = build_network(dict(net_opt))
        ckpt = root / f'{name}.pth'
        atomic_torch_save({'params': net.state_dict()}, ckpt)
        specs.append(f'{name}={write_yaml(root / f"{name}.yml", {"network_g": net_opt})}:{ckpt}')
    return root, sets, specs


def test_dice_jaccard_on_19_and_5_classes_params_and_gmacs(setup, capsys):
    root, sets, specs = setup
    out = root / 'out'
    args = ['--testset', sets[19], '--out', str(out), '--device', 'cpu']
    assert mask_benchmark.main(args + [a for s in specs for a in ('--net', s)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / 'mask_benchmark.json').read_text())
    rows = {r['method']: r for r in result['rows']}
    assert list(rows) == ['ours', 'unet19', 'unetpp'] and result['test_classes'] == 19
    assert [rows[n]['classes'] for n in rows] == [5, 19, 5]
    # 19-class Dice only for the 19-class net; 5-group Dice for all
    assert isinstance(rows['unet19']['dice_19'], float) and rows['ours']['dice_19'].startswith('— (a 5-class net')
    lut = grouping_lut()
    stems = sorted(os.listdir(os.path.join(sets[19], 'gt')))
    gt19 = [cv2.imread(os.path.join(sets[19], 'labels', s), cv2.IMREAD_UNCHANGED) for s in stems]
    for name, row in rows.items():
        pred5 = [cv2.imread(str(out / 'masks' / name / s), cv2.IMREAD_UNCHANGED) for s in stems]
        assert all(p.max() < 5 for p in pred5)
        # recomputed from the written 5-group masks and the grouped 19-class GT
        assert row['dice_5'] == pytest.approx(np.mean([smfd_dice(p, lut[g], 5) for p, g in zip(pred5, gt19)]))
        assert row['jaccard_5'] == pytest.approx(np.mean([smfd_jaccard(p, lut[g], 5) for p, g in zip(pred5, gt19)]))
        assert 0 <= row['jaccard_5'] <= row['dice_5'] <= 1
        net = mask_benchmark.load_net(next(s for s in specs if s.startswith(name + '=')), torch.device('cpu'))[2]
        assert row['params'] == count_parameters(net)
        assert row['params_keras'] == count_parameters(net) + 2 * count_bn_channels(net)
        assert isinstance(row['gmacs'], float) and row['gmacs'] > 0
    assert rows['ours']['paper_params'] == 5_414_751 and rows['unet19']['paper_params'] == 31_401_605
    assert rows['unetpp']['paper_params'] == 36_643_333
    assert printed == (out / 'mask_benchmark.md').read_text() and '| unet19 | UNet | 19 |' in printed


def test_a_5_group_test_set_has_no_19_class_columns(setup):
    root, sets, specs = setup
    testset = mask_benchmark.load_testset(sets[5])
    nets = [mask_benchmark.load_net(s, torch.device('cpu')) for s in specs if s.startswith('unet19=')]
    row = mask_benchmark.evaluate(testset, nets, torch.device('cpu'))['rows'][0]
    assert row['dice_19'] == '— (the test set has 5-group labels)' and isinstance(row['dice_5'], float)


def test_bad_net_spec_is_one_clear_line(setup, capsys):
    root, sets, _ = setup
    assert mask_benchmark.main(['--testset', sets[5], '--out', str(root / 'x'), '--net', 'a=b.pth']) == 2
    assert "expected OPTION.yml:CHECKPOINT.pth, got 'b.pth'" in capsys.readouterr().err
