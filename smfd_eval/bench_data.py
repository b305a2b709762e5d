"""Data pipeline rate vs the rate one SMFD training step consumes samples, measured in the same run.

    python scripts/bench_data.py --json bench_data.json [--data DIR] [--size 256] [--batch 16] [--threads 2]
    python scripts/bench_data.py --json /tmp/q.json --quick

Measured, per DataLoader worker (one process, torch and OpenCV on 1 thread, as in a worker):
  * `degrade`: the §3.4.1 degradation alone (smfd_data.degradation.degrade) on a size² face;
  * `dataset`: SMFDFaceDataset.__getitem__ in the train phase (read PNGs, resize, augment, group, degrade, pack);
  * `dataset_no_degrade`: the same with `degrade_on_device: true` (the loader leaves degradation to the model);
and with --threads: the torch twin (smfd_data.degradation_torch.degrade_batch) degrading a batch on the device,
and the consumption of one training step of SMFDUNet (default configuration, batch --batch, size²): forward,
MSE, backward, Adam step. Target (issue "Performance"): data ≥ 3× consumption.

Without --data, a few synthetic faces (smfd_data.synthetic_faces) are written into a temporary prepared layout
(images/, labels/). Timings are medians of raw per-call times, all kept in the JSON.
"""
import argparse
import math
import os
import statistics
import sys
import tempfile

import cv2
import numpy as np
import torch

from smfd_arch import SMFDUNet
from smfd_data.degradation import DegradationConfig, degrade, sample_degradation
from smfd_data.degradation_torch import degrade_batch
from smfd_data.face_dataset import SMFDFaceDataset
from smfd_data.image_io import write_image
from smfd_data.synthetic_faces import generate_face
from smfd_eval import timing

DATA_RATIO_TARGET = 3.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    timing.add_common_arguments(parser)
    parser.add_argument('--data', help='prepared layout (images/, labels/) to read; default: synthetic faces')
    parser.add_argument('--size', type=int, default=None, help='face size (default 256; quick 64)')
    parser.add_argument('--batch', type=int, default=None, help='training batch (default 16; quick 2)')
    parser.add_argument('--faces', type=int, default=None, help='synthetic faces to write (default 8; quick 3)')
    parser.add_argument('--samples', type=int, default=None,
                        help='samples per data measurement (default 24; quick 4)')
    parser.add_argument('--workers', type=int, default=1,
                        help='DataLoader workers the target is evaluated for (rate per worker × workers)')
    parser.add_argument('--tiny', action='store_true', help='tiny SMFDUNet (test-suite smoke runs)')
    args = parser.parse_args(argv)
    small = args.quick or args.tiny
    args.size = args.size or (32 if args.tiny else 64 if args.quick else 256)
    args.batch = args.batch or (2 if small else 16)
    args.faces = args.faces or (3 if small else 8)
    args.samples = args.samples or (4 if small else 24)
    if args.workers < 1:
        parser.error('--workers must be >= 1')
    return args


def write_synthetic_layout(root, n, size, seed=0):
    """n synthetic faces in the prepared layout: root/images/<stem>.png (BGR PNG), root/labels/<stem>.png."""
    for i in range(n):
        rgb, labels = generate_face(np.random.default_rng([seed, i]), size)
        write_image(os.path.join(root, 'images', f'{i:05d}.png'), rgb)
        write_image(os.path.join(root, 'labels', f'{i:05d}.png'), labels)
    return root


def dataset_for(root, size, degrade_on_device=False):
    return SMFDFaceDataset({'phase': 'train', 'dataroot_gt': os.path.join(root, 'images'),
                            'dataroot_mask': os.path.join(root, 'labels'), 'io_backend': {'type': 'disk'},
                            'gt_size': size, 'degrade_on_device': degrade_on_device})


def per_sample_rate(fn, n):
    """Call fn(i) for i < n, timed one by one (one first call untimed); returns (samples/s, raw seconds)."""
    fn(0)
    times = []
    for i in range(n):
        times.append(timing.time_calls(lambda i=i: fn(i), 'cpu', repeats=1, warmup=0)[0])
    return 1.0 / statistics.median(times), times


def measure_worker_rates(root, args):
    """Per-worker rates: one thread for torch and OpenCV, as inside a DataLoader worker."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        ds = dataset_for(root, args.size)
        ds_dev = dataset_for(root, args.size, degrade_on_device=True)
        sharp = [ds.read_pair(i)[0] for i in range(len(ds))]
        cfg = DegradationConfig.from_dict({})
        rng = np.random.default_rng(0)
        rates = {}
        for name, fn in (('degrade', lambda i: degrade(sharp[i % len(sharp)], cfg, rng)),
                         ('dataset', lambda i: ds[i % len(ds)]),
                         ('dataset_no_degrade', lambda i: ds_dev[i % len(ds_dev)])):
            rate, times = per_sample_rate(fn, args.samples)
            rates[name] = {'samples_per_s': rate, **timing.summarize(times)}
            print(f'  {name:20s} {rate:8.2f} samples/s per worker')
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    return rates, sharp


def measure_torch_twin(sharp, device, args):
    """degrade_batch on `device` for a batch of `args.batch` faces (parameters drawn outside the timing)."""
    cfg = DegradationConfig.from_dict({})
    rng = np.random.default_rng(1)
    imgs = torch.stack([torch.from_numpy(sharp[i % len(sharp)]).permute(2, 0, 1) for i in range(args.batch)])
    imgs = imgs.to(device)
    params = [sample_degradation(cfg, rng) for _ in range(args.batch)]
    times = timing.time_calls(lambda: degrade_batch(imgs, params, device), device, args.repeats, args.warmup)
    rate = args.batch / statistics.median(times)
    print(f'  {"torch twin (batch)":20s} {rate:8.2f} samples/s on {device}')
    return {'samples_per_s': rate, 'batch': args.batch, **timing.summarize(times)}


def measure_train_step(device, args):
    """Samples/s one training step consumes: SMFDUNet default, MSE, backward, Adam (the §3.4.6 setup)."""
    torch.manual_seed(0)
    net = SMFDUNet(**(timing.TINY_UNET if args.tiny else {})).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    lq = torch.rand(args.batch, 3, args.size, args.size, device=device)
    gt = torch.rand(args.batch, 3, args.size, args.size, device=device)
    labels = torch.randint(0, net.num_mask_classes, (args.batch, args.size, args.size), device=device)
    mask = torch.nn.functional.one_hot(labels, net.num_mask_classes).permute(0, 3, 1, 2).float()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(lq, mask), gt)
        loss.backward()
        optimizer.step()

    times = timing.time_calls(step, device, args.repeats, args.warmup)
    rate = args.batch / statistics.median(times)
    print(f'  {"training step":20s} {rate:8.2f} samples/s consumed (batch {args.batch}, {args.size}²)')
    return {'samples_per_s': rate, 'batch': args.batch, 'size': args.size, 'step_s': statistics.median(times),
            **timing.summarize(times)}


def measure(args, device, monitor=None):
    """Every rate, the ratios and the targets (also used by bench_inference with small settings)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix='smfd_bench_data_') as tmp:
        root = args.data
        if root is None:
            root = write_synthetic_layout(tmp, args.faces, args.size)
        elif not os.path.isdir(os.path.join(root, 'images')):
            raise SystemExit(f'--data {root}: expected a prepared layout with images/ and labels/ folders')
        rates, sharp = measure_worker_rates(root, args)
    if monitor is not None:
        monitor.sample('data rates')
    rates['torch_twin'] = measure_torch_twin(sharp, device, args)
    consumption = measure_train_step(device, args)
    if monitor is not None:
        monitor.sample('training step')
    out['rates'] = rates
    out['consumption'] = consumption
    need = consumption['samples_per_s'] * DATA_RATIO_TARGET
    rows = []
    for name in ('degrade', 'dataset', 'dataset_no_degrade', 'torch_twin'):
        rate = rates[name]['samples_per_s']
        rows.append({'stage': name, 'samples_per_s': rate, 'ratio': rate / consumption['samples_per_s'],
                     'workers_for_target': (math.ceil(need / rate) if name != 'torch_twin' else None)})
    out['ratios'] = rows
    # with degrade_on_device the twin runs inside the training step: its cost per batch adds to the step
    twin_batch_s = rates['torch_twin']['median_s']
    out['twin_cost_fraction_of_step'] = twin_batch_s / consumption['step_s']
    out['targets'] = [
        timing.target(f'data ≥ {DATA_RATIO_TARGET:g}× consumption ({args.workers} worker(s), CPU degradation)',
                      args.workers * rates['dataset']['samples_per_s'] / consumption['samples_per_s'],
                      DATA_RATIO_TARGET, '>=',
                      'workers × SMFDFaceDataset samples/s per worker / training-step samples/s'),
        timing.target(f'data ≥ {DATA_RATIO_TARGET:g}× consumption ({args.workers} worker(s), degrade on device)',
                      args.workers * rates['dataset_no_degrade']['samples_per_s']
                      * (consumption['step_s'] + twin_batch_s) / args.batch,
                      DATA_RATIO_TARGET, '>=', 'workers × no-degrade samples/s / samples/s of (step + twin)'),
    ]
    return out


def main(argv=None):
    args = parse_args(argv)
    device = timing.setup_device(args)
    settings = {'size': args.size, 'batch': args.batch, 'samples': args.samples, 'workers': args.workers,
                'repeats': args.repeats, 'warmup': args.warmup, 'data': args.data or 'synthetic',
                'quick': args.quick, 'tiny': args.tiny}
    report, monitor = timing.start_report('bench_data', args, device, settings)
    print(f'Device {device}, {torch.get_num_threads()} threads, {args.size}², batch {args.batch}')
    report.update(measure(args, device, monitor))
    timing.finish_report(report, monitor, args)
    rows, consumption = report['ratios'], report['consumption']

    env = report['environment']
    print(f'\n{env["cpu_model"]}, {env["torch_threads"]} threads (data: 1 per worker), torch {env["torch"]}, '
          f'{env["date"]}, load {env["load_avg_1_5_15"]} → {report["load_avg_end"]}\n')
    print(timing.format_table(rows, [('stage', 'stage'), ('samples_per_s', 'samples/s'), ('ratio', '× consumption'),
                                     ('workers_for_target', f'workers for {DATA_RATIO_TARGET:g}×')],
                              title=f'Data rate per worker vs training consumption '
                                    f'({consumption["samples_per_s"]:.3g} samples/s, batch {args.batch}, '
                                    f'{args.size}²)'))
    print(f'\nTorch twin per batch = {report["twin_cost_fraction_of_step"]:.1%} of a training step on {device}.\n')
    print(timing.targets_table(report['targets']))
    print(f'\nWrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
