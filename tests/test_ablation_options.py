"""Table 4.3 ablation option files (options/ablations/*.yml): every network builds; the size-matched variants
(issue #10, item 5) are within 5 % of the pixel-shuffle row's parameters and differ from their row only in the
decoder widths."""
import glob
import os
import re

import pytest

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABLATIONS = sorted(glob.glob(os.path.join(ROOT, 'options', 'ablations', '*.yml')))
SIZE_MATCHED = {  # size-matched file -> the Table 4.3 row file it re-sizes
    'attention_transpose_sizematched.yml': 'attention_transpose.yml',
    'mask_traditional_upsampling_sizematched.yml': 'mask_traditional_upsampling.yml',
}
REFERENCE = 'attention_pixelshuffle.yml'


def read(name):
    """Read as BasicSR's entries do (the plugin's one YAML reader)."""
    from smfd_data.option_file import read_option
    return read_option(os.path.join(ROOT, 'options', 'ablations', name))


def n_params(network_opt):
    import torch
    from basicsr.archs import build_network
    with torch.device('meta'):  # shapes only
        net = build_network(dict(network_opt))
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('path', ABLATIONS, ids=os.path.basename)
def test_every_ablation_network_builds(path):
    import torch
    from basicsr.archs import build_network
    opt = read(os.path.basename(path))
    net = build_network(dict(opt['network_g'])).eval()
    x = torch.rand(1, 3, 16, 16)
    mask = torch.zeros(1, 16, 16, dtype=torch.long)
    with torch.no_grad():
        out = net(x, mask) if net.use_mask else net(x)
    assert out.shape == x.shape


def test_size_matched_files_are_listed():
    names = {os.path.basename(p) for p in ABLATIONS}
    assert {n for n in names if 'sizematched' in n} == set(SIZE_MATCHED)


@pytest.mark.parametrize('name', sorted(SIZE_MATCHED))
def test_size_matched_variant_is_within_5_percent_of_pixel_shuffle(name):
    reference = n_params(read(REFERENCE)['network_g'])
    row = read(SIZE_MATCHED[name])
    opt = read(name)
    params = n_params(opt['network_g'])
    assert abs(params / reference - 1) < 0.05, (params, reference)
    assert n_params(row['network_g']) < 0.5 * reference  # the unmatched row is the capacity gap being closed
    # same configuration as its row but the decoder widths (and the run's name)
    assert {k: v for k, v in opt['network_g'].items() if k != 'decoder_widths'} == dict(row['network_g'])
    for key in ('datasets', 'train', 'val', 'mask_source', 'model_type', 'path'):
        assert opt[key] == row[key], key
    # the header names the row, says size-matched and quotes the measured counts
    with open(os.path.join(ROOT, 'options', 'ablations', name)) as f:
        header = ''.join(line for line in f if line.startswith('#'))
    first = header.splitlines()[0]
    assert re.search(r'row "[^"]+, size-matched"', first) and 'paper:' not in first
    assert f'{params:,}' in header and f'{reference:,}' in header and f'{n_params(row["network_g"]):,}' in header


def test_run_ablations_costs_prints_params_and_gmacs_per_row(capsys):
    from smfd_eval.ablations import main
    assert main(['--costs', '--size', '32']) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ') and '.yml' in line]
    rows = {cells[1]: cells for cells in ([c.strip() for c in line.strip('|').split('|')] for line in lines)}
    assert set(rows) == {os.path.basename(p) for p in ABLATIONS}
    reference = n_params(read(REFERENCE)['network_g'])
    for name, (label, _, params, ratio, gmacs) in rows.items():
        opt = read(name)
        assert int(params.replace(',', '')) == n_params(opt['network_g']), name  # the row's own network
        assert ratio == f'{100 * (n_params(opt["network_g"]) / reference - 1):+.1f} %'
        assert float(gmacs) > 0, (name, gmacs)
        assert label.startswith(('Backbone', 'Table')) or label == opt['name']
    for name in SIZE_MATCHED:  # within 5 % of pixel-shuffle; their unmatched rows are far below
        assert abs(float(rows[name][3].split()[0])) < 5.0
        assert float(rows[SIZE_MATCHED[name]][3].split()[0]) < -50.0
    # MACs grow with the face: the same rows at 64² cost about 4x those at 32²
    from smfd_eval.ablations import network_cost
    small, large = (network_cost(read(REFERENCE)['network_g'], size)[1] for size in (32, 64))
    assert 3.5 < large / small < 4.5
