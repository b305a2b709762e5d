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


def test_with_and_skip_parse_into_sets_and_name_the_flag_on_unknown_parts(capsys):
    from smfd_eval import bench_inference, bench_train
    args = bench_train.parse_args(['--json', 'x.json', '--with', 'compile', '--skip', 'overhead,bf16,'])
    assert args.with_ == {'compile'} and args.skip == {'overhead', 'bf16'}
    args = bench_inference.parse_args(['--json', 'x.json'])
    assert args.with_ == set() and args.skip == set()
    for module, flag, value, message in ((bench_train, '--skip', 'plain,warp', "unknown row(s) ['warp']; choose from"),
                                         (bench_inference, '--with', 'fp8,compile', "unknown part(s) ['fp8']")):
        with pytest.raises(SystemExit) as exit_info:
            module.parse_args(['--json', 'x.json', flag, value])
        assert exit_info.value.code == 2 and f'argument {flag}: {message}' in capsys.readouterr().err


def test_plain_unet_matches_parameter_count():
    from smfd_arch.blocks import count_parameters
    from smfd_eval.reference_archs import PlainUNet, plain_unet_like
    counts = {b: count_parameters(PlainUNet(base_width=b)) for b in (11, 12, 13)}
    assert counts[11] < counts[12] < counts[13]
    net = plain_unet_like(counts[12] + 10)
    assert net.down[0][0].out_channels == 12 and count_parameters(net) == counts[12]
    import torch
    assert net(torch.rand(1, 3, 32, 48)).shape == (1, 3, 32, 48)


# ------------------------------------------------------------------------------------------------ load record
PROC_STAT = """cpu  {busy} 0 0 5000 7 0 0 0 0 0
cpu0 1 2 3 4 5 6 7 8 0 0
intr 1 2 3
"""


def test_parse_proc_stat_and_self_stat():
    # busy = user + nice + system + irq + softirq + steal; idle (4th) and iowait (5th) are not busy
    assert bench_common.parse_proc_stat('cpu  10 2 3 1000 50 4 5 6 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n') == 30
    with pytest.raises(ValueError, match='no aggregate'):
        bench_common.parse_proc_stat('cpu0 1 2 3 4\n')
    # the process name may hold spaces and parentheses; utime, stime, cutime, cstime are fields 14-17
    fields = ['S', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '100', '20', '3', '4', '20', '0']
    assert bench_common.parse_self_stat('4242 (python (bench) x) ' + ' '.join(fields)) == 127


def fake_monitor(samples, ticks=100):
    """A LoadMonitor fed with (seconds, total busy jiffies, own jiffies) triples."""
    feed = iter(samples)
    state = {}

    def read():
        state['t'], busy, own = next(feed)
        return busy, own

    return bench_common.LoadMonitor(read=read, clock=lambda: state['t'], ticks_per_s=ticks)


def record_of(samples):
    monitor = fake_monitor(samples)
    for i in range(len(samples)):
        monitor.sample(f's{i}')
    return monitor.record()


def test_load_record_quiet_run_is_reliable():
    # 100 jiffies/s; we use 1.5 cores (150 jiffies/s), the others 0.1 core (10 jiffies/s), every 2 s
    rec = record_of([(2.0 * i, 320 * i, 300 * i) for i in range(5)])
    assert rec['reliable'] is True and rec['others_cores_mean'] == pytest.approx(0.1)
    assert len(rec['windows']) == 4 and all(w['others_cores'] == pytest.approx(0.1) for w in rec['windows'])
    assert rec['windows'][0]['own_cores'] == pytest.approx(1.5) and rec['limit_cores'] == 0.25
    assert '0.25 core on average' in rec['rule'] and 'every sample window' in rec['rule']


def test_load_record_one_busy_window_makes_the_run_unreliable():
    # others: 0.1 core, then 0.6 core in one 2-s window, then 0.1: the mean (0.2) is under the limit, one window not
    samples, busy, own = [(0.0, 0, 0)], 0, 0
    for i, others in enumerate([0.1, 0.6, 0.1, 0.1, 0.1]):
        busy, own = busy + 2 * 100 * others + 200, own + 200
        samples.append((2.0 * (i + 1), busy, own))
    rec = record_of(samples)
    assert rec['others_cores_mean'] == pytest.approx(0.2) and rec['others_cores_max'] == pytest.approx(0.6)
    assert rec['reliable'] is False


def test_load_record_busy_on_average_is_unreliable():
    rec = record_of([(2.0 * i, 260 * i, 200 * i) for i in range(4)])  # others 0.3 core throughout
    assert rec['others_cores_mean'] == pytest.approx(0.3) and rec['reliable'] is False


def test_load_record_merges_short_windows_and_handles_missing_proc():
    # samples 0.25 s apart: jiffy noise; merged into windows of >= 1 s
    rec = record_of([(0.25 * i, 27 * i, 25 * i) for i in range(9)])
    assert [w['seconds'] for w in rec['windows']] == [1.0, 1.0]
    rec = record_of([(0.25 * i, 27 * i, 25 * i) for i in range(11)])  # a 0.5-s tail joins the last window
    assert [w['seconds'] for w in rec['windows']] == [1.0, 1.5] and rec['windows'][-1]['to'] == 's10'
    assert rec['reliable'] is True and rec['others_cores_mean'] == pytest.approx(0.08)

    def unavailable():
        raise OSError('no /proc')

    monitor = bench_common.LoadMonitor(read=unavailable)
    monitor.sample('a')
    monitor.sample('b')
    assert not monitor.available and monitor.record()['reliable'] is None


# ------------------------------------------------------------------------------------------------ smoke runs
def run_bench(script, tmp_path, *extra):
    out = tmp_path / f'{script}.json'
    result = run_python([os.path.join(REPO, 'scripts', f'{script}.py'), '--json', str(out), '--tiny', '--threads', '1',
                         '--repeats', '2', '--warmup', '0', '--idle-s', '0.2', *extra], timeout=300)
    return result.stdout, json.loads(out.read_text())


def check_environment(report):
    env = report['environment']
    for key in ('cpu_model', 'torch', 'torch_threads', 'date', 'load_avg_1_5_15', 'device'):
        assert key in env
    assert env['torch_threads'] == 1
    load = report['load']
    assert report['reliable'] is load['reliable'] and load['reliable'] in (True, False)
    labels = [x['label'] for x in load['samples']]  # before, during, after
    assert labels[:2] == ['before start', 'before end'] and labels[-2:] == ['after start', 'after end']
    assert len(labels) >= 5 and load['windows'][0]['from'] == 'before start'
    assert load['windows'][-1]['to'] == 'after end'
    assert load['reliable'] is (load['others_cores_mean'] <= 0.25 and load['others_cores_max'] <= 0.25)
    assert 'Load: other processes used' in report['_stdout']


def test_bench_inference_smoke(tmp_path):
    stdout, report = run_bench('bench_inference', tmp_path)
    report['_stdout'] = stdout
    check_environment(report)
    for title in ('### Inference', '### Networks', '### Measured ceilings', '### Ratios', '### Best CPU path',
                  '### Targets'):
        assert title in stdout
    assert report['settings']['batches'] == [1, 2] and report['settings']['timing'].startswith('interleaved')
    cases = [c for c in report['cases'] if 'error' not in c]
    variants = {(c['model'], c['variant']) for c in cases}
    for model in ('smfd_unet', 'cascade'):
        for variant in ('eager', 'channels_last', 'onnxruntime'):
            assert (model, variant) in variants
    # heavy or secondary parts are opt-in (--with): not in a default run
    assert not {v for _, v in variants} & {'compile', 'autocast', 'channels_last+autocast'}
    assert not {m for m, _ in variants} & {'mask_generator', 'plain_unet'}
    for c in cases:
        assert len(c['raw_s']) == 2 and c['median_s'] == pytest.approx(sum(c['raw_s']) / 2, abs=2e-6)
        assert c['ms_per_face'] == pytest.approx(1000 * c['median_s'] / c['batch'])
        if c['model'] in ('smfd_unet', 'cascade'):
            eager = next(e for e in cases
                         if (e['model'], e['variant'], e['batch']) == (c['model'], 'eager', c['batch']))
            assert c['speedup_vs_eager'] == pytest.approx(eager['median_s'] / c['median_s'])
            assert c['gflops_achieved'] == pytest.approx(
                2 * report['networks'][c['model']]['macs_32']['gmacs'] * c['batch'] / c['median_s'])
    assert all(c['onnx_max_abs_diff'] <= 1e-4 for c in cases if c['variant'] == 'onnxruntime')
    assert report['peaks']['conv3x3_channels_last']['gflops'] > 0

    def case(model, variant, batch):
        return next(c for c in cases if (c['model'], c['variant'], c['batch']) == (model, variant, batch))

    ratios = report['ratios']
    # NAFNet and GFPGAN are installed by the project's set-up (make venv): both comparisons are there
    assert 'params' in report['references']['nafnet_w32'] and 'params' in report['references']['gfpgan_v1_clean']
    assert [r['batch'] for r in ratios['cascade_vs_nafnet_w32']] == [1, 2]
    for row in ratios['cascade_vs_nafnet_w32']:  # each net in its faster fp32 variant
        b = row['batch']
        best_cascade = min(case('cascade', v, b)['ms_per_face'] for v in ('eager', 'channels_last'))
        best_nafnet = min(case('nafnet_w32', v, b)['ms_per_face'] for v in ('eager', 'channels_last'))
        assert row['ratio'] == pytest.approx(best_cascade / best_nafnet)
    gfp = ratios['cascade_vs_gfpgan']
    assert [r['batch'] for r in gfp] == [1] and gfp[0]['reference_size'] == 64  # batch 1 only by default
    assert gfp[0]['ratio'] == pytest.approx(case('cascade', 'eager', 1)['ms_per_face']
                                            / case('gfpgan_v1_clean', 'eager', 1)['ms_per_face'])
    conv = report['peaks']['conv3x3_channels_last']['gflops']
    assert ratios['conv3x3_channels_last_gflops'] == conv
    for row in ratios['conv_fraction']:
        best = min((c for c in cases if (c['model'], c['batch']) == (row['model'], row['batch'])),
                   key=lambda c: c['median_s'])
        assert row['best_path'] == best['variant'] and row['fraction'] == pytest.approx(best['gflops_achieved'] / conv)
    overhead = report['plugin_overhead']
    assert ratios['plugin_overhead_vs_SRModel'] == pytest.approx(
        overhead['results']['SMFDModel']['median_s'] / overhead['results']['basicsr_SRModel']['median_s'] - 1)
    data = report['data_vs_step']
    assert ratios['data_vs_training_step'] == pytest.approx(
        data['rates']['dataset']['samples_per_s'] / data['consumption']['samples_per_s'])
    assert len(report['targets']) == 2 + 1 + 2 * 2 + 2
    for t in report['targets']:
        expected = {'<=': t['value'] <= t['threshold'], '>=': t['value'] >= t['threshold']}[t['comparison']]
        assert t['met'] is expected


def test_bench_inference_opt_in_parts_and_flag_errors(tmp_path):
    stdout, report = run_bench('bench_inference', tmp_path, '--with', 'mask_generator,plain,autocast',
                               '--skip', 'onnx,gfpgan,nafnet,train,data,macs', '--batches', '1')
    variants = {(c['model'], c['variant']) for c in report['cases'] if 'error' not in c}
    assert ('mask_generator', 'channels_last+autocast') in variants and ('plain_unet', 'eager') in variants
    assert not any(v == 'onnxruntime' for _, v in variants) and report['plugin_overhead'] is None
    result = run_python([os.path.join(REPO, 'scripts', 'bench_inference.py'), '--json', str(tmp_path / 'x.json'),
                         '--with', 'fp8'], check=False)
    assert result.returncode == 2 and "--with: unknown part(s) ['fp8']" in result.stderr


def test_bench_data_smoke(tmp_path):
    stdout, report = run_bench('bench_data', tmp_path, '--samples', '2', '--workers', '2')
    report['_stdout'] = stdout
    check_environment(report)
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
    report['_stdout'] = stdout
    check_environment(report)
    assert '### Training iterations' in stdout and '### Fast paths' in stdout
    results = report['overhead']['results']
    assert set(results) == {'bare_pytorch', 'basicsr_SRModel', 'SMFDModel'}
    for res in results.values():
        assert len(res['raw_s']) == 2
        assert res['time_vs_SRModel'] == pytest.approx(res['median_s'] / results['basicsr_SRModel']['median_s'])
    assert report['plugin_overhead'] == pytest.approx(results['SMFDModel']['time_vs_SRModel'] - 1)
    assert report['targets'][0]['met'] is (report['plugin_overhead'] <= 0.05)
    rows = {r['fast_path']: r for r in report['fast_paths']}
    # one row per fast path in one run; on CPU fp16 and compile are opt-in
    assert list(rows) == ['plain', 'channels_last', 'bf16', 'degrade_on_device']
    for row in rows.values():
        assert len(row['raw_s']) == 2 and row['skipped_steps'] == 0
        assert row['speedup_vs_plain'] == pytest.approx(rows['plain']['median_s'] / row['median_s'])
