"""Benchmark scripts: helpers, and tiny smoke runs that check tables, JSON keys and the derived ratios.

No timing assertions (the figures depend on the machine); what is checked is that each number is derived
correctly from the raw timings stored next to it.
"""
import argparse
import json
import math
import os

import pytest

from smfd_eval import timing as bench_common  # noqa: E402
from tests.helpers import REPO, run_python


# ------------------------------------------------------------------------------------------------ bench_common
def test_target_comparisons_and_unmeasured():
    assert bench_common.target('t', 0.5, 1.0, '<', 'x')['met'] is True
    assert bench_common.target('t', 1.0, 1.0, '<', 'x')['met'] is False
    assert bench_common.target('t', 1.0, 1.0, '<=', 'x')['met'] is True
    assert bench_common.target('t', 1.4, 1.5, '>=', 'x')['met'] is False
    t = bench_common.target('t', None, 1.5, '>=', 'x')
    assert t['met'] is None and t['value'] is None


def test_format_table_cells():
    table = bench_common.format_table([{'a': 'x', 'b': 1234.5678}, {'a': 'y', 'c': True}, {'b': 0.012345}],
                                      [('a', 'A'), ('b', 'B'), ('c', 'C')], title='T')
    lines = table.splitlines()
    assert lines[0] == '### T' and lines[2] == '| A | B | C |' and lines[3] == '|---|---|---|'
    assert lines[4] == '| x | 1234.6 | – |'
    assert lines[5] == '| y | – | yes |'
    assert lines[6] == '| – | 0.0123 | – |'


def test_time_calls_counts_and_summarize():
    calls = []
    times = bench_common.time_calls(lambda: calls.append(1), 'cpu', repeats=4, warmup=2)
    assert len(times) == 4 and len(calls) == 6 and all(t >= 0 for t in times)
    s = bench_common.summarize([3.0, 1.0, 2.0, 10.0])
    assert s['median_s'] == 2.5 and s['min_s'] == 1.0 and s['max_s'] == 10.0 and s['raw_s'] == [3.0, 1.0, 2.0, 10.0]


def test_conv_flops_and_int_lists():
    assert bench_common.conv3x3_gflops(4, 64, 128) == pytest.approx(2 * 4 * 64 * 64 * 9 * 128 * 128 / 1e9)
    assert bench_common.parse_int_list('1,16') == [1, 16]
    for bad in ('1,x', '0', ''):
        with pytest.raises(argparse.ArgumentTypeError):
            bench_common.parse_int_list(bad)


def test_count_macs_of_a_conv_by_hand():
    import torch
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Sigmoid())
    macs = bench_common.count_macs(net, (torch.rand(1, 3, 10, 10),))
    assert macs['gmacs'] == pytest.approx(3 * 8 * 9 * 10 * 10 / 1e9)
    assert macs['uncounted_ops'] == {'aten::sigmoid': 1}  # element-wise: listed, not counted


def test_plain_unet_matches_parameter_count():
    from smfd_arch.blocks import count_parameters
    from smfd_eval.reference_archs import PlainUNet, plain_unet_like
    counts = {b: count_parameters(PlainUNet(base_width=b)) for b in (11, 12, 13)}
    assert counts[11] < counts[12] < counts[13]
    net = plain_unet_like(counts[12] + 10)
    assert net.down[0][0].out_channels == 12 and count_parameters(net) == counts[12]
    import torch
    assert net(torch.rand(1, 3, 32, 48)).shape == (1, 3, 32, 48)


# ------------------------------------------------------------------------------------------------ smoke runs
def run_bench(script, tmp_path, *extra):
    out = tmp_path / f'{script}.json'
    result = run_python([os.path.join(REPO, 'scripts', f'{script}.py'), '--json', str(out), '--tiny', '--threads', '1',
                         '--repeats', '2', '--warmup', '0', *extra], timeout=300)
    return result.stdout, json.loads(out.read_text())


def check_environment(env):
    for key in ('cpu_model', 'torch', 'torch_threads', 'date', 'load_avg_1_5_15', 'device'):
        assert key in env
    assert env['torch_threads'] == 1


def test_bench_inference_smoke(tmp_path):
    stdout, report = run_bench('bench_inference', tmp_path, '--skip', 'compile')
    check_environment(report['environment'])
    for title in ('### Inference', '### Networks', '### Measured ceilings', '### Comparisons', '### Targets'):
        assert title in stdout
    cases = [c for c in report['cases'] if 'error' not in c]
    variants = {(c['model'], c['variant']) for c in cases}
    for model in ('mask_generator', 'smfd_unet', 'cascade'):
        for variant in ('eager', 'channels_last', 'autocast', 'channels_last+autocast', 'onnxruntime'):
            assert (model, variant) in variants
    assert not any(c['variant'] == 'compile' for c in report['cases'])  # --skip compile
    for c in cases:
        assert len(c['raw_s']) == 2 and c['median_s'] == pytest.approx(sum(c['raw_s']) / 2, abs=2e-6)
        assert c['ms_per_face'] == pytest.approx(1000 * c['median_s'] / c['batch'])
        if c['model'] in ('mask_generator', 'smfd_unet', 'cascade'):
            eager = next(e for e in cases if (e['model'], e['variant'], e['batch'], e['group'])
                         == (c['model'], 'eager', c['batch'], c['group']))
            assert c['speedup_vs_eager'] == pytest.approx(eager['median_s'] / c['median_s'])
            assert c['gflops_achieved'] == pytest.approx(
                2 * report['networks'][c['model']]['macs_32']['gmacs'] * c['batch'] / c['median_s'])
    onnx = [c for c in cases if c['variant'] == 'onnxruntime']
    assert all(c['onnx_max_abs_diff'] <= 1e-4 for c in onnx)
    # cascade MACs = mask generator + SMFDUNet (softmax is not counted)
    nets = report['networks']
    assert nets['cascade']['macs_32']['gmacs'] == pytest.approx(
        nets['mask_generator']['macs_32']['gmacs'] + nets['smfd_unet']['macs_32']['gmacs'], rel=1e-6)
    assert nets['cascade']['params'] == nets['mask_generator']['params'] + nets['smfd_unet']['params']
    peaks = report['peaks']
    assert {'matmul', 'conv3x3_nchw', 'conv3x3_channels_last'} <= set(peaks)
    assert all(p['gflops'] > 0 for p in peaks.values())
    names = [t['name'] for t in report['targets']]
    assert len(names) == 2 * 2 + 2 + 3 * 2
    for t in report['targets']:
        if t['value'] is not None:
            expected = {'<': t['value'] < t['threshold'], '<=': t['value'] <= t['threshold'],
                        '>=': t['value'] >= t['threshold']}[t['comparison']]
            assert t['met'] is expected
    # references: measured when their package is installed, else the error says how to install it
    for name in ('nafnet_w32', 'gfpgan_v1_clean', 'plain_unet'):
        ref = report['references'][name]
        assert ('params' in ref) != ('error' in ref)
        if 'params' in ref:
            assert any(c['model'] == name for c in cases)
    assert report['references']['plain_unet']['params'] == 30757  # base width 2: closest to the tiny net's 23262
    # each comparison uses the case timed in the reference's group (interleaved with it)
    groups = {c['group'] for c in cases if c['model'] == 'cascade'}
    assert groups == {'cascade+nafnet_w32', 'cascade+gfpgan_v1_clean'}
    for ref in ('nafnet_w32', 'gfpgan_v1_clean'):
        if 'params' not in report['references'][ref]:  # package not installed
            continue
        row = next(r for r in report['comparisons']
                   if r['reference'] == f'{ref}/eager' and r['case'] == 'cascade/eager')
        c = next(x for x in cases if (x['model'], x['variant'], x['batch'], x['group'])
                 == ('cascade', 'eager', row['batch'], f'cascade+{ref}'))
        n = next(x for x in cases if (x['model'], x['batch']) == (ref, row['batch']))
        assert row['ratio'] == pytest.approx(c['ms_per_face'] / n['ms_per_face'])


def test_bench_data_smoke(tmp_path):
    stdout, report = run_bench('bench_data', tmp_path, '--samples', '2', '--workers', '2')
    check_environment(report['environment'])
    assert '### Data rate per worker' in stdout and '### Targets' in stdout
    for name in ('degrade', 'dataset', 'dataset_no_degrade', 'torch_twin'):
        rate = report['rates'][name]
        assert rate['samples_per_s'] > 0 and rate['raw_s']
    consumption = report['consumption']
    assert consumption['samples_per_s'] == pytest.approx(consumption['batch'] / consumption['median_s'])
    for row in report['ratios']:
        assert row['ratio'] == pytest.approx(row['samples_per_s'] / consumption['samples_per_s'])
        if row['workers_for_target'] is not None:
            assert row['workers_for_target'] == math.ceil(3 * consumption['samples_per_s'] / row['samples_per_s'])
    cpu_target = report['targets'][0]
    assert cpu_target['value'] == pytest.approx(2 * report['rates']['dataset']['samples_per_s']
                                                / consumption['samples_per_s'])


def test_bench_train_smoke(tmp_path):
    stdout, report = run_bench('bench_train', tmp_path, '--iters', '2')
    check_environment(report['environment'])
    assert '### Training iterations' in stdout
    results = report['results']
    assert set(results) == {'bare_pytorch', 'basicsr_SRModel', 'SMFDModel', 'SMFDModel_mask_gt'}
    for res in results.values():
        assert len(res['raw_s']) == 2
        assert res['time_vs_SRModel'] == pytest.approx(res['median_s'] / results['basicsr_SRModel']['median_s'])
    assert report['plugin_overhead'] == pytest.approx(results['SMFDModel']['time_vs_SRModel'] - 1)
    assert report['targets'][0]['met'] is (report['plugin_overhead'] <= 0.05)
