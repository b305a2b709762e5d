"""Training-step speed: the SMFD plugin's overhead over BasicSR's SRModel, and each training fast path.

    python scripts/bench_train.py --json bench_train.json [--batch 4] [--size 128] [--iters 10] [--threads 2]
    python scripts/bench_train.py --json /tmp/q.json --with compile    # opt-in rows (compile takes minutes)

One iteration = feed_data + optimize_parameters on the same in-memory batch (no data loading), as in BasicSR's
train loop. Rows, all timed interleaved in blocks (drifting machine load hits every row alike):

* overhead: a bare PyTorch step (zero_grad, forward, MSE, backward, Adam), BasicSR's SRModel and SMFDModel
  (`mask_source: none`) on SMFDUNet(use_mask=False): same forward, so SMFDModel / SRModel − 1 is the plugin's
  cost (mask plumbing, NaN guard, protocol hooks). Target ≤ 5 %.
* fast paths (`train.*`, docs/training.md) on the real SMFD step (SMFDModel, `mask_source: gt`, the mask
  branch on): `plain`, `channels_last`, `bf16` (`train.amp`), `fp16` (CUDA by default: CPU fp16 has no fast
  kernels), `degrade_on_device` (the batch carries the sharp face and the drawn degradation; the model degrades
  it with the torch twin inside the step), `compile` (opt-in: `--with compile`). Each row has its time relative
  to `plain`.

A load record (before, during, after; smfd_eval.timing.LoadMonitor) gives `reliable`. Small default batch/size on
CPU: the plugin's cost per iteration is constant, so a cheaper step makes the overhead look larger, not smaller.
On a GPU use e.g. --batch 16 --size 256.
"""
import argparse
import logging
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from basicsr.models import build_model

from smfd_eval import timing

OVERHEAD_TARGET = 0.05
FAST_PATHS = ('plain', 'channels_last', 'bf16', 'fp16', 'degrade_on_device', 'compile')
OPT_IN = ('compile', 'fp16')
# kernels that fit a small face (degrade_on_device row)
DEGRADATION = {'gaussian_sizes': [3, 5, 7], 'motion_sizes': [3, 5, 7]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    timing.add_common_arguments(parser)
    parser.add_argument('--batch', type=int, default=None, help='batch size (default 4; quick 2)')
    parser.add_argument('--size', type=int, default=None, help='patch size (default 128; quick 32)')
    parser.add_argument('--iters', type=int, default=None, help='timed iterations per row (default 10; quick 2)')
    parser.add_argument('--block', type=int, default=2, help='iterations per row before switching to the next')
    timing.add_part_arguments(parser, OPT_IN, FAST_PATHS + ('overhead', ), 'row', ' (fp16 is on by default on CUDA)')
    parser.add_argument('--tiny', action='store_true', help='tiny SMFDUNet (test-suite smoke runs)')
    args = parser.parse_args(argv)
    small = args.quick or args.tiny
    args.batch = args.batch or (2 if small else 4)
    args.size = args.size or (32 if small else 128)
    args.iters = args.iters or (2 if small else 10)
    return args


def model_opt(model_type, network_g, workdir, device, **extra):
    opt = {'name': f'bench_{model_type}', 'model_type': model_type, 'num_gpu': 1 if device.type == 'cuda' else 0,
           'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1, 'scale': 1, 'network_g': dict(network_g),
           'path': {'models': f'{workdir}/models', 'training_states': f'{workdir}/states',
                    'visualization': f'{workdir}/vis', 'pretrain_network_g': None},
           'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-4},
                     'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0, 'reduction': 'mean'}, 'total_iter': 10,
                     # SRModel requires a scheduler; the loop (not timed here) would step it
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [10**9], 'gamma': 0.5}}}
    opt.update(extra)
    return opt


class BareStep:
    """The same step without BasicSR: zero_grad, forward, MSE, backward, Adam."""

    def __init__(self, net, device):
        self.net = net.to(device).train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        self.device = device

    def feed_data(self, data):
        self.lq, self.gt = data['lq'].to(self.device), data['gt'].to(self.device)

    def optimize_parameters(self, current_iter):
        self.optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(self.net(self.lq), self.gt)
        loss.backward()
        self.optimizer.step()


def overhead_runners(net_opt, device, workdir):
    """bare PyTorch, SRModel and SMFDModel(mask_source none) on the same network, built from the same seed."""
    from basicsr.archs import build_network
    net_opt = dict(net_opt, use_mask=False)
    runners = {}
    torch.manual_seed(0)
    runners['bare_pytorch'] = BareStep(build_network(dict(net_opt)), device)
    torch.manual_seed(0)
    runners['basicsr_SRModel'] = build_model(model_opt('SRModel', net_opt, workdir, device))
    torch.manual_seed(0)
    runners['SMFDModel'] = build_model(model_opt('SMFDModel', net_opt, workdir, device, mask_source='none'))
    return runners


def fast_path_rows(args, device):
    rows = [p for p in FAST_PATHS if p not in args.skip]
    return [p for p in rows if p not in OPT_IN or p in args.with_ or (p == 'fp16' and device.type == 'cuda')]


def fast_path_runners(net_opt, device, workdir, paths):
    """SMFDModel(mask_source gt) with one `train.*` fast path each ('plain': none)."""
    runners = {}
    for path in paths:
        train = {'amp': path} if path in ('bf16', 'fp16') else {path: True} if path in ('channels_last',
                                                                                          'compile') else {}
        extra = {'datasets': {'train': {'degrade_on_device': True}}} if path == 'degrade_on_device' else {}
        opt = model_opt('SMFDModel', dict(net_opt, use_mask=True), f'{workdir}/{path}', device, mask_source='gt',
                        **extra)
        opt['train'].update(train)
        torch.manual_seed(0)
        runners[path] = build_model(opt)
    return runners


def make_batch(batch, size, degrade_on_device=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    data = {'lq': torch.rand(batch, 3, size, size, generator=gen),
            'gt': torch.rand(batch, 3, size, size, generator=gen),
            'mask': torch.nn.functional.one_hot(torch.randint(0, 5, (batch, size, size), generator=gen), 5)
            .permute(0, 3, 1, 2).float()}
    if degrade_on_device:
        import json

        from smfd_data.degradation import DegradationConfig, sample_degradation
        cfg = DegradationConfig.from_dict(DEGRADATION)
        data['degradation'] = [json.dumps(sample_degradation(cfg, np.random.default_rng([seed, i])))
                               for i in range(batch)]
        data['lq'] = data['gt'].clone()
        data['degrade_on_device'] = torch.ones(batch, dtype=torch.bool)
    return data


def time_interleaved(runners, batches, device, iters, block=2, warmup=1, monitor=None):
    """{name: [seconds per iteration]}: every runner `warmup` untimed iterations, then blocks of `block`
    iterations per runner in turn until each has `iters`; `monitor` is sampled after each cycle."""
    times = {name: [] for name in runners}
    it = 0

    def iteration(name):
        nonlocal it
        it += 1
        runners[name].feed_data(batches[name])
        runners[name].optimize_parameters(it)

    for name in runners:  # warm-up: allocator, oneDNN primitive caches (and a compile's compilation)
        for _ in range(warmup):
            iteration(name)
    while min(len(t) for t in times.values()) < iters:
        for name in runners:
            for _ in range(min(block, iters - len(times[name]))):
                timing.synchronize(device)
                t0 = time.perf_counter()
                iteration(name)
                timing.synchronize(device)
                times[name].append(time.perf_counter() - t0)
        if monitor is not None:
            monitor.sample(f'cycle ({sum(map(len, times.values()))} iterations)')
    return times


def results_of(times, batch):
    results = {}
    for name, t in times.items():
        median = statistics.median(t)
        results[name] = {'iters_per_s': 1.0 / median, 'samples_per_s': batch / median, **timing.summarize(t)}
    return results


def measure_overhead(device, batch, size, iters, tiny=False, block=2, warmup=1, monitor=None):
    """The plugin overhead on its own (also used by bench_inference): {'results', 'plugin_overhead', 'target'}."""
    net_opt = dict(type='SMFDUNet', **(timing.TINY_UNET if tiny else {}))
    data = make_batch(batch, size)
    with tempfile.TemporaryDirectory(prefix='smfd_bench_train_') as workdir:
        runners = overhead_runners(net_opt, device, workdir)
        times = time_interleaved(runners, {n: data for n in runners}, device, iters, block, warmup, monitor)
    return overhead_summary(results_of(times, batch), batch, size)


def overhead_summary(results, batch, size):
    base = results['basicsr_SRModel']['median_s']
    for res in results.values():
        res['time_vs_SRModel'] = res['median_s'] / base
    overhead = results['SMFDModel']['median_s'] / base - 1.0
    return {'batch': batch, 'size': size, 'results': results, 'plugin_overhead': overhead,
            'target': timing.target(f'SMFDModel overhead vs SRModel ≤ {OVERHEAD_TARGET:.0%}', overhead,
                                    OVERHEAD_TARGET, '<=', 'median iteration time SMFDModel(mask_source none) / '
                                    'SRModel − 1, same net, interleaved')}


def main(argv=None):
    args = parse_args(argv)
    device = timing.setup_device(args)
    logging.getLogger('basicsr').setLevel(logging.WARNING)  # no network printouts between timings
    paths = fast_path_rows(args, device)
    settings = {'batch': args.batch, 'size': args.size, 'iters': args.iters, 'block': args.block,
                'warmup': args.warmup, 'quick': args.quick, 'tiny': args.tiny, 'fast_paths': paths}
    report, monitor = timing.start_report('bench_train', args, device, settings)
    print(f'Device {device}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size}², '
          f'{args.iters} iterations per row; rows: {", ".join(paths)}')
    net_opt = dict(type='SMFDUNet', **(timing.TINY_UNET if args.tiny else {}))
    with tempfile.TemporaryDirectory(prefix='smfd_bench_train_') as workdir:
        runners = {} if 'overhead' in args.skip else overhead_runners(net_opt, device, workdir)
        fast = fast_path_runners(net_opt, device, workdir, paths)
        runners.update({f'fast_{p}': r for p, r in fast.items()})
        plain, degrading = make_batch(args.batch, args.size), make_batch(args.batch, args.size, True)
        batches = {n: degrading if n == 'fast_degrade_on_device' else plain for n in runners}
        monitor.sample('runners built')
        times = time_interleaved(runners, batches, device, args.iters, args.block, args.warmup, monitor)
        skipped = {n: getattr(r, 'skipped_steps', 0) for n, r in runners.items()}
    results = results_of(times, args.batch)
    report['targets'] = []
    if 'overhead' not in args.skip:
        overhead = overhead_summary({n: results[n] for n in ('bare_pytorch', 'basicsr_SRModel', 'SMFDModel')},
                                    args.batch, args.size)
        report['overhead'] = overhead
        report['plugin_overhead'] = overhead['plugin_overhead']
        report['targets'].append(overhead['target'])
    rows = []
    base = results.get('fast_plain', {}).get('median_s')
    for path in paths:
        res = results[f'fast_{path}']
        rows.append({'fast_path': path, **res, 'skipped_steps': skipped[f'fast_{path}'],
                     'time_vs_plain': res['median_s'] / base if base else None,
                     'speedup_vs_plain': base / res['median_s'] if base else None})
    report['fast_paths'] = rows
    timing.finish_report(report, monitor, args)

    env = report['environment']
    print(f'\n{env["cpu_model"]}, {env["torch_threads"]} threads, torch {env["torch"]}, {env["date"]}\n')
    if 'overhead' in report:
        table = [{'runner': name, **res} for name, res in report['overhead']['results'].items()]
        print(timing.format_table(table, [('runner', 'runner'), ('iters_per_s', 'iters/s'),
                                          ('median_s', 'median s/iter'), ('time_vs_SRModel', 'time / SRModel')],
                                  title=f'Training iterations (batch {args.batch}, {args.size}², median of '
                                        f'{args.iters})'))
        print()
    print(timing.format_table(rows, [('fast_path', 'train.* fast path'), ('median_s', 'median s/iter'),
                                     ('samples_per_s', 'samples/s'), ('speedup_vs_plain', '× plain'),
                                     ('skipped_steps', 'skipped steps')],
                              title='Fast paths on the SMFD step (mask branch on)'))
    print()
    print(timing.targets_table(report['targets']))
    print(f'\nWrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
