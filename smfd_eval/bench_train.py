"""Training-loop overhead of the SMFD plugin: SMFDModel vs BasicSR's SRModel driving the same network.

    python scripts/bench_train.py --json bench_train.json [--batch 4] [--size 128] [--iters 10] [--threads 2]
    python scripts/bench_train.py --json /tmp/q.json --quick

Both models train SMFDUNet(use_mask=False) with MSE and Adam on the same in-memory batch (no data loading):
one iteration = feed_data + optimize_parameters, as in BasicSR's train loop. SMFDModel uses `mask_source:
none`, so the two run the same forward; the difference is the plugin (mask plumbing, NaN guard, protocol
hooks). Also timed, for context: a bare PyTorch step on the same network (what BasicSR's own model adds) and
SMFDModel with the mask branch (`mask_source: gt`, use_mask=True: the real SMFD cost). Iterations of the models
are interleaved in blocks, so drifting machine load hits all of them alike. Target: overhead ≤ 5%.

Small default batch/size on CPU: the plugin's cost per iteration is constant, so a cheaper step makes the
overhead look larger, not smaller. On a GPU use e.g. --batch 16 --size 256.
"""
import argparse
import logging
import statistics
import sys
import tempfile
import time

import torch
from basicsr.models import build_model

from smfd_eval.timing import (
    TINY_UNET,
    add_common_arguments,
    environment,
    format_table,
    setup_device,
    summarize,
    synchronize,
    target,
    targets_table,
    write_json,
)

OVERHEAD_TARGET = 0.05


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_arguments(parser)
    parser.add_argument('--batch', type=int, default=None, help='batch size (default 4; quick 2)')
    parser.add_argument('--size', type=int, default=None, help='patch size (default 128; quick 32)')
    parser.add_argument('--iters', type=int, default=None, help='timed iterations per model (default 10; quick 2)')
    parser.add_argument('--block', type=int, default=2, help='iterations per model before switching to the next')
    parser.add_argument('--no-mask-run', action='store_true', help='leave out the SMFDModel mask_source=gt run')
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


def build_runners(args, device, workdir):
    from basicsr.archs import build_network
    net_opt = dict(type='SMFDUNet', use_mask=False, **(TINY_UNET if args.tiny else {}))
    runners = {}
    torch.manual_seed(0)
    runners['bare_pytorch'] = BareStep(build_network(dict(net_opt)), device)
    torch.manual_seed(0)
    runners['basicsr_SRModel'] = build_model(model_opt('SRModel', net_opt, workdir, device))
    torch.manual_seed(0)
    runners['SMFDModel'] = build_model(model_opt('SMFDModel', net_opt, workdir, device, mask_source='none'))
    if not args.no_mask_run:
        torch.manual_seed(0)
        runners['SMFDModel_mask_gt'] = build_model(
            model_opt('SMFDModel', dict(net_opt, use_mask=True), workdir, device, mask_source='gt'))
    return runners


def main(argv=None):
    args = parse_args(argv)
    device = setup_device(args)
    logging.getLogger('basicsr').setLevel(logging.WARNING)  # no network printouts between timings
    env = environment(device, args.threads)  # load average before the runs
    gen = torch.Generator().manual_seed(0)
    data = {'lq': torch.rand(args.batch, 3, args.size, args.size, generator=gen),
            'gt': torch.rand(args.batch, 3, args.size, args.size, generator=gen),
            'mask': torch.randint(0, 5, (args.batch, args.size, args.size), generator=gen)}
    print(f'Device {device}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size}², '
          f'{args.iters} iterations per model')
    with tempfile.TemporaryDirectory(prefix='smfd_bench_train_') as workdir:
        runners = build_runners(args, device, workdir)
        times = {name: [] for name in runners}
        it = 0

        def iteration(runner):
            nonlocal it
            it += 1
            runner.feed_data(data)
            runner.optimize_parameters(it)

        for runner in runners.values():  # warm-up: allocator, oneDNN primitive caches
            for _ in range(args.warmup):
                iteration(runner)
        while min(len(t) for t in times.values()) < args.iters:
            for name, runner in runners.items():
                for _ in range(min(args.block, args.iters - len(times[name]))):
                    synchronize(device)
                    t0 = time.perf_counter()
                    iteration(runner)
                    synchronize(device)
                    times[name].append(time.perf_counter() - t0)

    results = {}
    for name, t in times.items():
        median = statistics.median(t)
        results[name] = {'iters_per_s': 1.0 / median, 'samples_per_s': args.batch / median, **summarize(t)}
    base = results['basicsr_SRModel']['median_s']
    for name, res in results.items():
        res['time_vs_SRModel'] = res['median_s'] / base
    overhead = results['SMFDModel']['median_s'] / base - 1.0
    report = {'script': 'bench_train', 'environment': env,
              'settings': {'batch': args.batch, 'size': args.size, 'iters': args.iters, 'block': args.block,
                           'warmup': args.warmup, 'quick': args.quick, 'tiny': args.tiny},
              'results': results, 'plugin_overhead': overhead,
              'targets': [target(f'SMFDModel overhead vs SRModel ≤ {OVERHEAD_TARGET:.0%}', overhead, OVERHEAD_TARGET,
                                 '<=', 'median iteration time SMFDModel(mask_source none) / SRModel − 1, same net')]}
    report['load_avg_end'] = environment(device, args.threads)['load_avg_1_5_15']
    write_json(args.json, report)

    print(f'\n{env["cpu_model"]}, {env["torch_threads"]} threads, torch {env["torch"]}, {env["date"]}, '
          f'load {env["load_avg_1_5_15"]} → {report["load_avg_end"]}\n')
    rows = [{'runner': name, **res} for name, res in results.items()]
    print(format_table(rows, [('runner', 'runner'), ('iters_per_s', 'iters/s'), ('samples_per_s', 'samples/s'),
                              ('median_s', 'median s/iter'), ('time_vs_SRModel', 'time / SRModel')],
                       title=f'Training iterations (batch {args.batch}, {args.size}², median of {args.iters})'))
    print()
    print(targets_table(report['targets']))
    print(f'\nWrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
