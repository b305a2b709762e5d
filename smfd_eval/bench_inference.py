"""Inference speed of the SMFD networks against NAFNet-w32 and GFPGAN, every case timed interleaved in one process.

    python scripts/bench_inference.py --json bench_inference.json            # the default run: ≤ 5 min on 2 cores
    python scripts/bench_inference.py --json F --with compile,autocast --batches 1,4,16   # heavy variants, opt-in
    python scripts/bench_inference.py --json /tmp/q.json --quick             # every code path at 64²

Default cases, per 256² face at batch 1 and 4: SMFDUNet and the cascade (MaskGenerator → softmax → SMFDUNet, the
"generated masks" pipeline) in eager fp32, channels_last fp32 and onnxruntime; NAFNet-width32 (GoPro deblurring
configuration) in eager and channels_last fp32; GFPGAN's generator (GFPGANv1Clean) at 512² in eager fp32 at batch
1 (every batch with `--with gfpgan_all_batches`). Opt-in (`--with`): `compile` (torch.compile, minutes of
compilation), `autocast` (bf16 on CPU / fp16 on CUDA, with and without channels_last), `mask_generator` (alone),
`plain` (a plain U-Net with SMFDUNet's parameter count). All networks have random weights.

Also measured in the same process: the ceilings (matmul, 3×3 conv NCHW vs channels_last, before and after the
cases), GMACs (fvcore), the plugin's training overhead over BasicSR's SRModel (smfd_eval.bench_train at a small
size) and the data pipeline against a training step (smfd_eval.bench_data at 128², batch 4).

The JSON holds every raw timing, `ratios` (cascade / NAFNet-w32 with each net in its faster fp32 variant; cascade /
GFPGAN per 512² face; SMFDUNet and cascade on their best CPU path as a fraction of the measured channels_last 3×3
conv throughput; plugin overhead; data / step), the targets, and the load record with `reliable`
(smfd_eval.timing.LoadMonitor: false when other processes used more than a quarter of a core). Cases are timed in
rounds (every case once per round, alternating order), so load that drifts hits all of them alike.
docs/performance.md explains each figure and its limits.
"""
import argparse
import copy
import ctypes
import gc
import math
import os
import statistics
import sys
import tempfile
import time

import torch

from smfd_arch import MaskGenerator, SMFDUNet
from smfd_arch.blocks import count_parameters
from smfd_eval import timing
from smfd_eval.reference_archs import build_gfpgan_v1_clean, build_nafnet, plain_unet_like
from smfd_inference.cascade import SMFDCascade
from smfd_inference.onnx import OnnxRestorer, export_network
from smfd_models.fast_paths import autocast_for, prepare_for_inference, to_channels_last

OPT_IN = ('compile', 'autocast', 'mask_generator', 'plain', 'gfpgan_all_batches')
SKIPPABLE = ('channels_last', 'onnx', 'gfpgan', 'nafnet', 'peaks', 'macs', 'train', 'data')
SMFD_MODELS = ('mask_generator', 'smfd_unet', 'cascade')
FP32_VARIANTS = ('eager', 'channels_last')
BEST_PATH_VARIANTS = ('eager', 'channels_last', 'compile', 'onnxruntime')  # fp32 paths for the conv fraction
# targets of issue 9
NAFNET_RATIO_TARGET = 1.0
GFPGAN_RATIO_TARGET = 0.15
CONV_FRACTION_TARGET = 0.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    timing.add_common_arguments(parser)
    parser.add_argument('--sizes', type=timing.parse_int_list, default=None,
                        help='SMFD face sizes (default 256; quick 64)')
    parser.add_argument('--batches', type=timing.parse_int_list, default=None,
                        help='batch sizes (default 1,4; quick 1,2)')
    timing.add_part_arguments(parser, OPT_IN, SKIPPABLE)
    parser.add_argument('--tiny', action='store_true', help='tiny widths for every network (test-suite smoke runs)')
    args = parser.parse_args(argv)
    small = args.quick or args.tiny
    args.sizes = args.sizes or ([32] if args.tiny else [64] if args.quick else [256])
    args.batches = args.batches or ([1, 2] if small else [1, 4])
    if args.repeats is None:
        args.repeats = 2 if small else 3
    if args.warmup is None:
        args.warmup = 0  # the first call of every case is its (separately timed) warm-up
    return args


# ----------------------------------------------------------------------------------------------- timing
class Case:
    """One timed configuration: `fn()` runs one batch; `times` fills during the interleaved rounds."""

    def __init__(self, model, variant, size, batch, fn, gmacs, extra=None):
        self.model, self.variant, self.size, self.batch, self.fn, self.gmacs = model, variant, size, batch, fn, gmacs
        self.extra = dict(extra or {})
        self.first, self.times, self.error = None, [], None

    def label(self):
        return f'{self.model:15s} {self.variant:24s} {self.size}² b{self.batch:<3d}'


def timed_call(fn, device):
    timing.synchronize(device)
    start = time.perf_counter()
    fn()
    timing.synchronize(device)
    return time.perf_counter() - start


def release_memory():
    """Collect garbage and hand freed heap memory back to the OS (glibc keeps it otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_rounds(cases, device, args, monitor=None):
    """Warm every case up (first call timed apart: compilation, allocation), then `args.repeats` rounds that call
    every case once, in alternating order: load that drifts during the run hits all cases alike, so the ratios
    between cases stay meaningful on a shared machine. `monitor` is sampled after each round."""
    for case in cases:
        try:
            case.first = timed_call(case.fn, device)
            for _ in range(args.warmup):
                timed_call(case.fn, device)
        except Exception as err:  # e.g. a compile failing on this machine: report, keep going
            case.error = f'{type(err).__name__}: {err}'.strip()[:1500]
            print(f'  {case.label()} FAILED ({case.error[:200]})')
            continue
        print(f'  {case.label()} first call {case.first:8.3f} s, RSS {timing.rss_gb() or 0:5.1f} GiB')
    if monitor is not None:
        monitor.sample('warm-up done')
    live = [c for c in cases if c.error is None]
    for r in range(args.repeats):
        start = time.perf_counter()
        for case in (live if r % 2 == 0 else live[::-1]):
            if case.error is None:
                try:
                    case.times.append(timed_call(case.fn, device))
                except Exception as err:
                    case.error = f'{type(err).__name__}: {err}'.strip()[:1500]
        if monitor is not None:
            monitor.sample(f'round {r + 1}')
        print(f'  round {r + 1}/{args.repeats}: {time.perf_counter() - start:.1f} s')


def case_record(model, variant, size, batch, first, times, gmacs):
    median = statistics.median(times)
    rec = {'model': model, 'variant': variant, 'size': size, 'batch': batch, 'first_call_s': round(first, 4),
           **timing.summarize(times), 'ms_per_face': 1000.0 * median / batch, 'faces_per_s': batch / median}
    if gmacs is not None:
        rec['gflops_achieved'] = 2.0 * gmacs * batch / median
    return rec


def error_record(model, variant, size, batch, err):
    text = f'{type(err).__name__}: {err}'.strip()
    return {'model': model, 'variant': variant, 'size': size, 'batch': batch, 'error': text[:1500]}


# ----------------------------------------------------------------------------------------------- networks
def smfd_networks(tiny):
    torch.manual_seed(0)
    mask_generator = MaskGenerator(**(timing.TINY_MASK if tiny else {})).eval()
    unet = SMFDUNet(**(timing.TINY_UNET if tiny else {})).eval()
    cascade = SMFDCascade(unet, mask_generator).eval()
    k = unet.num_mask_classes

    def image(batch, size, device):
        return (torch.rand(batch, 3, size, size, device=device),)

    def image_and_mask(batch, size, device):
        probs = torch.softmax(4 * torch.randn(batch, k, size, size, device=device), dim=1)
        return (torch.rand(batch, 3, size, size, device=device), probs)

    return {'mask_generator': (mask_generator, image, 'mask_generator'),
            'smfd_unet': (unet, image_and_mask, 'unet'),
            'cascade': (cascade, image, 'cascade')}


def reference_networks(args, smfd_unet_params):
    """{name: (builder, size multiplier, variants, batches)}; builders return (net, note), run lazily."""
    refs = {}
    if 'nafnet' not in args.skip:
        def nafnet():
            config = None
            if args.tiny:
                config = dict(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 1],
                              dec_blk_nums=[1, 1, 1, 1])
            net, source = build_nafnet(config)
            return net, f'NAFNet-width32 GoPro config ({source}), random weights'
        variants = ['eager'] + (['channels_last'] if 'channels_last' not in args.skip else [])
        refs['nafnet_w32'] = (nafnet, 1, variants, args.batches)
    if 'gfpgan' not in args.skip:
        def gfpgan():
            size = 2 * args.sizes[0]
            if args.tiny:
                net = build_gfpgan_v1_clean(out_size=size, channel_multiplier=1, num_style_feat=32, narrow=0.125)
            else:
                net = build_gfpgan_v1_clean(out_size=size)
            return net, f'GFPGANv1Clean (gfpgan==1.3.8) at {size}², GFPGANer configuration, random weights'
        batches = args.batches if 'gfpgan_all_batches' in args.with_ else args.batches[:1]
        refs['gfpgan_v1_clean'] = (gfpgan, 2, ['eager'], batches)
    if 'plain' in args.with_:
        def plain():
            net = plain_unet_like(smfd_unet_params)
            return net, f'plain U-Net, base width {net.down[0][0].out_channels}, matched to SMFDUNet parameters'
        refs['plain_unet'] = (plain, 1, ['eager'], args.batches)
    return refs


# ----------------------------------------------------------------------------------------------- variants
def torch_variant(net, variant, device, amp):
    """(callable taking inputs, note) for a PyTorch variant; the network is copied (variants must not interact)."""
    net = copy.deepcopy(net).to(device)
    channels_last = variant.startswith('channels_last')
    use_amp = variant.endswith('autocast')
    # static shapes: one compiled graph per batch size (a dynamic-batch graph was several times slower on CPU)
    net = prepare_for_inference(net, channels_last=channels_last, compile=variant == 'compile',
                                compile_options={'dynamic': False})

    def call(*inputs):
        if channels_last:
            inputs = tuple(to_channels_last(t) for t in inputs)
        with torch.inference_mode(), autocast_for(device, amp if use_amp else None):
            return net(*inputs)

    return call


def onnx_variant(net, kind, size, k, tmpdir, threads, name):
    path = os.path.join(tmpdir, f'{name}_{size}.onnx')
    export = export_network(net, path, kind, size=size, dynamic_hw=False, num_classes=k)
    restorer = OnnxRestorer(path, threads=threads)
    session, names = restorer.session, restorer.input_names
    providers = session.get_providers()

    def call(*inputs):
        return session.run(None, {n: t.cpu().numpy() for n, t in zip(names, inputs)})

    return call, {'onnx_max_abs_diff': export['max_abs_diff'], 'onnx_providers': providers}


def output_difference(got, expected):
    """max |Δ| and PSNR (peak = max(1, max|expected|)) of a variant's output against eager fp32."""
    if isinstance(got, (list, tuple)):  # onnxruntime returns a list of arrays
        got = got[0]
    got = torch.as_tensor(got).detach().float().cpu()
    diff = got - expected.float()
    mse = float((diff**2).mean())
    peak = max(1.0, float(expected.abs().max()))
    return {'max_abs_diff_vs_eager': float(diff.abs().max()),
            'psnr_vs_eager_db': float('inf') if mse == 0 else 10 * math.log10(peak**2 / mse)}


def smfd_variants(args):
    variants = ['eager']
    if 'channels_last' not in args.skip:
        variants.append('channels_last')
    if 'autocast' in args.with_:
        variants.append('autocast')
        if 'channels_last' not in args.skip:
            variants.append('channels_last+autocast')
    if 'compile' in args.with_:
        variants.append('compile')
    if 'onnx' not in args.skip:
        variants.append('onnxruntime')
    return variants


def build_smfd_cases(args, device, amp, tmpdir, nets, names, variants, cases, failed):
    """Cases of the SMFD networks `names` in `variants`; returns (info per network, accuracy checks to run after
    the timings)."""
    k = nets['smfd_unet'][0].num_mask_classes
    info, checks = {}, []
    for name in names:
        net, make_inputs, kind = nets[name]
        info[name] = {'params': count_parameters(net)}
        for size in args.sizes:
            macs = {} if 'macs' in args.skip else timing.count_macs(net, make_inputs(1, size, 'cpu'))
            info[name][f'macs_{size}'] = macs
            torch.manual_seed(1)
            check_inputs = make_inputs(1, size, 'cpu')
            with torch.inference_mode():
                expected = net(*check_inputs)
            for variant in variants:
                try:
                    extra = {}
                    if variant == 'onnxruntime':
                        call, extra = onnx_variant(net, kind, size, k, tmpdir, args.threads, name)
                        dev = torch.device('cpu')
                    else:
                        call = torch_variant(net, variant, device, amp)
                        dev = device
                except Exception as err:  # e.g. the export failing: report, keep going
                    for batch in args.batches:
                        failed.append(error_record(name, variant, size, batch, err))
                    print(f'  {name} {variant}: FAILED to build ({type(err).__name__}: {str(err)[:200]})')
                    continue
                if variant.endswith('autocast'):
                    extra['amp'] = amp
                group = []
                for batch in args.batches:
                    inputs = make_inputs(batch, size, dev)
                    group.append(Case(name, variant, size, batch, lambda call=call, inputs=inputs: call(*inputs),
                                      macs.get('gmacs'), extra))
                cases.extend(group)
                checks.append((call, tuple(t.to(dev) for t in check_inputs), expected, group))
    return info, checks


def run_accuracy_checks(checks):
    """Output of each variant vs eager fp32 on a fixed input; after the timings, so that a compile's first timed
    call is its compilation."""
    for call, inputs, expected, group in checks:
        try:
            accuracy = output_difference(call(*inputs), expected)
        except Exception as err:
            accuracy = {'accuracy_error': f'{type(err).__name__}: {err}'[:500]}
        for case in group:
            case.extra.update(accuracy)


def build_reference_cases(args, device, cases, smfd_unet_params):
    info = {}
    for name, (builder, multiplier, variants, batches) in reference_networks(args, smfd_unet_params).items():
        size = multiplier * args.sizes[0]
        try:
            net, note = builder()
        except Exception as err:
            info[name] = {'error': f'{type(err).__name__}: {err}'[:1500]}
            print(f'  {name}: not available ({info[name]["error"][:200]})')
            continue
        net = net.eval()
        info[name] = {'params': count_parameters(net), 'size': size, 'note': note}
        if 'macs' not in args.skip:
            info[name][f'macs_{size}'] = timing.count_macs(net, (torch.rand(1, 3, size, size),))  # on CPU
        gmacs = info[name].get(f'macs_{size}', {}).get('gmacs')
        for variant in variants:
            call = torch_variant(net, variant, device, None)
            for batch in batches:
                x = torch.rand(batch, 3, size, size, device=device)
                cases.append(Case(name, variant, size, batch, lambda call=call, x=x: call(x), gmacs))
    return info


def case_results(cases, failed):
    results = list(failed)
    for case in cases:
        if case.error is not None or not case.times:
            results.append(error_record(case.model, case.variant, case.size, case.batch,
                                        RuntimeError(case.error or 'no timing')))
            continue
        rec = case_record(case.model, case.variant, case.size, case.batch, case.first, case.times, case.gmacs)
        rec.update(case.extra)
        results.append(rec)
    return results


# ----------------------------------------------------------------------------------------------- analysis
def find(results, model, variant, batch, size=None):
    for rec in results:
        if (rec['model'] == model and rec['variant'] == variant and rec['batch'] == batch
                and (size is None or rec['size'] == size) and 'error' not in rec):
            return rec
    return None


def fastest(results, model, batch, variants, size=None):
    """The fastest timed case of `model` at `batch` among `variants`, or None."""
    cands = [r for r in (find(results, model, v, batch, size) for v in variants) if r]
    return min(cands, key=lambda r: r['median_s']) if cands else None


def add_speedups(results):
    for rec in results:
        if 'error' in rec or rec['model'] not in SMFD_MODELS:
            continue
        eager = find(results, rec['model'], 'eager', rec['batch'], rec['size'])
        if eager:
            rec['speedup_vs_eager'] = eager['median_s'] / rec['median_s']


def _pair(name, case, reference, what):
    if not case or not reference:
        return None
    return {'name': name, 'batch': case['batch'], 'case': f'{case["model"]}/{case["variant"]}',
            'reference': f'{reference["model"]}/{reference["variant"]}', 'case_ms_per_face': case['ms_per_face'],
            'reference_ms_per_face': reference['ms_per_face'],
            'ratio': case['ms_per_face'] / reference['ms_per_face'], 'case_size': case['size'],
            'reference_size': reference['size'], 'what': what}


def compute_ratios(results, peaks, args):
    """The issue's ratios, from the cases of this run (all timed interleaved)."""
    size = args.sizes[0]
    conv = (peaks or {}).get('conv3x3_channels_last', {}).get('gflops')
    ratios = {'cascade_vs_nafnet_w32': [], 'cascade_vs_gfpgan': [], 'smfd_unet_vs_plain_unet': [],
              'conv_fraction': [], 'conv3x3_channels_last_gflops': conv}
    for batch in args.batches:
        row = _pair('cascade/NAFNet-w32', fastest(results, 'cascade', batch, FP32_VARIANTS, size),
                    fastest(results, 'nafnet_w32', batch, FP32_VARIANTS),
                    f'per {size}² face, each net in its faster of eager NCHW / channels_last fp32')
        if row:
            ratios['cascade_vs_nafnet_w32'].append(row)
        row = _pair('cascade/GFPGAN', find(results, 'cascade', 'eager', batch, size),
                    find(results, 'gfpgan_v1_clean', 'eager', batch),
                    f'cascade per {size}² face / GFPGANv1Clean per {2 * size}² face, eager fp32')
        if row:
            ratios['cascade_vs_gfpgan'].append(row)
        row = _pair('SMFDUNet/plain U-Net', find(results, 'smfd_unet', 'eager', batch, size),
                    find(results, 'plain_unet', 'eager', batch), 'equal parameters, eager fp32')
        if row:
            ratios['smfd_unet_vs_plain_unet'].append(row)
        for model in ('smfd_unet', 'cascade'):
            best = fastest(results, model, batch, BEST_PATH_VARIANTS, size)
            if best and conv and best.get('gflops_achieved'):
                ratios['conv_fraction'].append({
                    'model': model, 'batch': batch, 'best_path': best['variant'],
                    'gflops_achieved': best['gflops_achieved'], 'fraction': best['gflops_achieved'] / conv,
                    'what': 'achieved GFLOP/s (fvcore MACs × 2 / median time) on the fastest fp32 path / measured '
                            'channels_last 3×3 conv GFLOP/s'})
    return ratios


def evaluate_targets(ratios, overhead, data):
    out = []
    for row in ratios['cascade_vs_nafnet_w32']:
        out.append(timing.target(f'cascade ≤ {NAFNET_RATIO_TARGET:g}× NAFNet-w32 per face (b{row["batch"]})',
                                 row['ratio'], NAFNET_RATIO_TARGET, '<=', f'{row["case"]} / {row["reference"]}'))
    for row in ratios['cascade_vs_gfpgan']:
        out.append(timing.target(f'cascade ≤ {GFPGAN_RATIO_TARGET:g}× GFPGAN per {row["reference_size"]}² face '
                                 f'(b{row["batch"]})',
                                 row['ratio'], GFPGAN_RATIO_TARGET, '<=', row['what']))
    for row in ratios['conv_fraction']:
        out.append(timing.target(f'{row["model"]} ≥ {CONV_FRACTION_TARGET:.0%} of channels_last conv GFLOP/s '
                                 f'(b{row["batch"]})', row['fraction'], CONV_FRACTION_TARGET, '>=',
                                 f'best path: {row["best_path"]}'))
    if overhead:
        out.append(overhead['target'])
    if data:
        out.extend(data['targets'][:1])
    return out


def measure_overhead(args, device, monitor):
    from smfd_eval.bench_train import measure_overhead as overhead
    small = args.quick or args.tiny
    # bench_train's default setting (batch 4, 128²): at 64² the step is so short that the fixed per-step cost of
    # the plugin's checks dominates and the ratio says more about the toy size than about training
    return overhead(device, batch=2 if small else 4, size=32 if small else 128, iters=2 if small else 10,
                    tiny=args.tiny, monitor=monitor)


def measure_data(args, device, monitor):
    from smfd_eval import bench_data
    small = args.quick or args.tiny
    settings = argparse.Namespace(data=None, size=32 if small else 128, batch=2 if small else 4, faces=3,
                                  samples=2 if small else 6, workers=1, repeats=2, warmup=1 if not small else 0,
                                  tiny=args.tiny)
    result = bench_data.measure(settings, device, monitor)
    result['settings'] = vars(settings)
    return result


# ----------------------------------------------------------------------------------------------- report
def print_tables(report):
    env = report['environment']
    print(f'\n{env["cpu_model"]}, {env["torch_threads"]} threads, torch {env["torch"]}, onnxruntime '
          f'{env["onnxruntime"]}, device {env["device"]}{" (" + env["gpu"] + ")" if "gpu" in env else ""}, '
          f'{env["date"]}, reliable = {report["reliable"]}\n')
    rows = []
    for rec in report['cases']:
        row = dict(rec)
        if 'error' in rec:
            row['ms_per_face'] = 'FAILED: ' + rec['error'][:60].replace('|', '/').replace('\n', ' ')
        rows.append(row)
    columns = [('model', 'model'), ('variant', 'variant'), ('size', 'size'), ('batch', 'batch'),
               ('ms_per_face', 'ms/face'), ('faces_per_s', 'faces/s'), ('gflops_achieved', 'GFLOP/s'),
               ('speedup_vs_eager', '× eager'), ('psnr_vs_eager_db', 'PSNR vs eager dB'),
               ('first_call_s', 'first call s')]
    print(timing.format_table(rows, columns, title='Inference (median of raw timings, interleaved rounds)'))
    nets = [{'network': name, 'params_M': info.get('params', 0) / 1e6 if 'params' in info else None,
             'gmacs': next((v.get('gmacs') for k, v in info.items() if k.startswith('macs_')), None),
             'note': info.get('note') or info.get('error', '')[:80]}
            for name, info in {**report['networks'], **report['references']}.items()]
    print()
    print(timing.format_table(nets, [('network', 'network'), ('params_M', 'params (M)'), ('gmacs', 'GMACs/face'),
                                     ('note', 'note')], title='Networks (GMACs at the size timed)'))
    if report['peaks']:
        print()
        print(timing.format_table([{'kernel': k, **v} for k, v in report['peaks'].items()],
                                  [('kernel', 'kernel'), ('shape', 'shape'), ('gflops', 'GFLOP/s')],
                                  title='Measured ceilings (fp32)'))
    ratios = report['ratios']
    pairs = ratios['cascade_vs_nafnet_w32'] + ratios['cascade_vs_gfpgan'] + ratios['smfd_unet_vs_plain_unet']
    print()
    print(timing.format_table(pairs, [('case', 'case'), ('reference', 'reference'), ('batch', 'batch'),
                                      ('ratio', 'time/face ratio'), ('what', 'what')],
                              title='Ratios in this run (< 1: case faster)'))
    print()
    print(timing.format_table(ratios['conv_fraction'], [('model', 'model'), ('batch', 'batch'),
                                                        ('best_path', 'best path'), ('gflops_achieved', 'GFLOP/s'),
                                                        ('fraction', 'of channels_last conv')],
                              title='Best CPU path against the measured 3×3 conv throughput'))
    print()
    print(timing.targets_table(report['targets']))


def main(argv=None):
    args = parse_args(argv)
    device = timing.setup_device(args)
    amp = 'fp16' if device.type == 'cuda' else 'bf16'
    settings = {'sizes': args.sizes, 'batches': args.batches, 'repeats': args.repeats, 'warmup': args.warmup,
                'skip': sorted(args.skip), 'with': sorted(args.with_), 'timing': 'interleaved rounds, one process',
                'quick': args.quick, 'tiny': args.tiny, 'autocast_dtype': amp}
    report, monitor = timing.start_report('bench_inference', args, device, settings)
    wall = time.perf_counter()
    print(f'Device {device}, {torch.get_num_threads()} threads, sizes {args.sizes}, batches {args.batches}')
    quick = args.quick or args.tiny
    peaks_before = {} if 'peaks' in args.skip else timing.measure_peaks(device, quick, repeats=3)
    monitor.sample('peaks before')
    nets = smfd_networks(args.tiny)
    smfd_unet_params = count_parameters(nets['smfd_unet'][0])
    names = [n for n in SMFD_MODELS if n != 'mask_generator' or 'mask_generator' in args.with_]
    cases, failed = [], []
    with tempfile.TemporaryDirectory(prefix='smfd_bench_onnx_') as tmpdir:
        report['networks'], checks = build_smfd_cases(args, device, amp, tmpdir, nets, names, smfd_variants(args),
                                                      cases, failed)
        report['references'] = build_reference_cases(args, device, cases, smfd_unet_params)
        monitor.sample('cases built')
        print(f'{len(cases)} cases, timed interleaved:')
        run_rounds(cases, device, args, monitor)
        run_accuracy_checks(checks)
        results = case_results(cases, failed)
        del cases, checks
        release_memory()
    peaks_after = {} if 'peaks' in args.skip else timing.measure_peaks(device, quick, repeats=3)
    # the ceiling is the better of the measurements taken before and after the cases (load drifts)
    report['peaks'] = {k: max(peaks_before[k], peaks_after[k], key=lambda p: p['gflops']) for k in peaks_before}
    report['peaks_before_after'] = {'before': peaks_before, 'after': peaks_after}
    monitor.sample('peaks after')
    report['plugin_overhead'] = None if 'train' in args.skip else measure_overhead(args, device, monitor)
    report['data_vs_step'] = None if 'data' in args.skip else measure_data(args, device, monitor)
    add_speedups(results)
    report['cases'] = results
    report['ratios'] = compute_ratios(results, report['peaks'], args)
    if report['plugin_overhead']:
        report['ratios']['plugin_overhead_vs_SRModel'] = report['plugin_overhead']['plugin_overhead']
    if report['data_vs_step']:
        report['ratios']['data_vs_training_step'] = report['data_vs_step']['targets'][0]['value']
    report['targets'] = evaluate_targets(report['ratios'], report['plugin_overhead'], report['data_vs_step'])
    report['wall_s'] = round(time.perf_counter() - wall, 1)
    timing.finish_report(report, monitor, args)
    print_tables(report)
    print(f'\nWall time {report["wall_s"]:.0f} s. Wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
