"""Inference speed of the SMFD networks against reference restoration networks timed in the same run.

    python scripts/bench_inference.py --json bench_inference.json [--sizes 256] [--batches 1,16] [--threads 2]
    python scripts/bench_inference.py --json /tmp/q.json --quick   # every code path at 64² (compiling takes minutes)

For MaskGenerator, SMFDUNet and the cascade (mask generator → softmax → SMFDUNet, the "generated masks" pipeline)
at each size and batch: eager fp32, channels_last, autocast (bf16 on CPU, fp16 on CUDA), channels_last +
autocast, torch.compile and onnxruntime. Beside them, with random weights at their native sizes: GFPGAN's
generator (GFPGANv1Clean, 2× the SMFD size, i.e. 512² for 256² faces), NAFNet-width32 (GoPro deblurring
configuration) and a plain U-Net with SMFDUNet's parameter count, all eager fp32. Also: parameters, GMACs
(fvcore), achieved GFLOP/s and measured ceilings (matmul, 3×3 conv NCHW vs channels_last).

Every case keeps its raw timings; ratios compare cases of the same run. The issue's targets are evaluated at
the end (met / NOT met) with what was measured. Cases are timed in interleaved rounds (all cases once per
round), so load that drifts during the run hits all of them alike. docs/performance.md explains each figure and
its limits.
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
from smfd_eval.reference_archs import build_gfpgan_v1_clean, build_nafnet, plain_unet_like
from smfd_eval.timing import (
    TINY_MASK,
    TINY_UNET,
    add_common_arguments,
    count_macs,
    environment,
    format_table,
    measure_peaks,
    parse_int_list,
    rss_gb,
    setup_device,
    summarize,
    synchronize,
    target,
    targets_table,
    write_json,
)
from smfd_inference.cascade import SMFDCascade
from smfd_inference.onnx import OnnxRestorer, export_network
from smfd_models.fast_paths import autocast_for, prepare_for_inference, to_channels_last

SKIPPABLE = ('channels_last', 'autocast', 'compile', 'onnx', 'gfpgan', 'nafnet', 'plain', 'peaks', 'macs')
SMFD_MODELS = ('mask_generator', 'smfd_unet', 'cascade')
# targets of the issue "Performance"
GFPGAN_RATIO_TARGET = 0.12
CONV_FRACTION_TARGET = 0.8
ONNX_SPEEDUP_TARGET = 1.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_arguments(parser)
    parser.add_argument('--sizes', type=parse_int_list, default=None, help='SMFD face sizes (default 256; quick 64)')
    parser.add_argument('--batches', type=parse_int_list, default=None, help='batch sizes (default 1,16; quick 1,2)')
    parser.add_argument('--skip', default='', help=f'comma-separated parts to leave out: {",".join(SKIPPABLE)}')
    parser.add_argument('--tiny', action='store_true', help='tiny widths for every network (test-suite smoke runs)')
    args = parser.parse_args(argv)
    args.skip = {s for s in args.skip.split(',') if s}
    unknown = sorted(args.skip - set(SKIPPABLE))
    if unknown:
        parser.error(f'--skip: unknown part(s) {unknown}; choose from {", ".join(SKIPPABLE)}')
    args.sizes = args.sizes or ([32] if args.tiny else [64] if args.quick else [256])
    args.batches = args.batches or ([1, 2] if args.quick or args.tiny else [1, 16])
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
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def release_memory():
    """Collect garbage and hand freed heap memory back to the OS (glibc keeps it otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_rounds(cases, device, args):
    """Warm every case up (first call timed apart: compilation, allocation), then `args.repeats` rounds that call
    every case once, in alternating order: load that drifts during the run hits all cases alike, so the ratios
    between cases stay meaningful on a shared machine."""
    for case in cases:
        try:
            case.first = timed_call(case.fn, device)
            for _ in range(args.warmup):
                timed_call(case.fn, device)
        except Exception as err:  # e.g. a compile failing on this machine: report, keep going
            case.error = f'{type(err).__name__}: {err}'.strip()[:1500]
            print(f'  {case.label()} FAILED ({case.error[:200]})')
            continue
        print(f'  {case.label()} first call {case.first:8.3f} s, RSS {rss_gb() or 0:5.1f} GiB')
    live = [c for c in cases if c.error is None]
    for r in range(args.repeats):
        start = time.perf_counter()
        for case in (live if r % 2 == 0 else live[::-1]):
            if case.error is None:
                try:
                    case.times.append(timed_call(case.fn, device))
                except Exception as err:
                    case.error = f'{type(err).__name__}: {err}'.strip()[:1500]
        print(f'  round {r + 1}/{args.repeats}: {time.perf_counter() - start:.1f} s')


def case_record(model, variant, size, batch, first, times, gmacs):
    median = statistics.median(times)
    rec = {'model': model, 'variant': variant, 'size': size, 'batch': batch, 'first_call_s': round(first, 4),
           **summarize(times), 'ms_per_face': 1000.0 * median / batch, 'faces_per_s': batch / median}
    if gmacs is not None:
        rec['gflops_achieved'] = 2.0 * gmacs * batch / median
    return rec


def error_record(model, variant, size, batch, err):
    text = f'{type(err).__name__}: {err}'.strip()
    return {'model': model, 'variant': variant, 'size': size, 'batch': batch, 'error': text[:1500]}


# ----------------------------------------------------------------------------------------------- networks
def smfd_networks(tiny):
    torch.manual_seed(0)
    mask_generator = MaskGenerator(**(TINY_MASK if tiny else {})).eval()
    unet = SMFDUNet(**(TINY_UNET if tiny else {})).eval()
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
    """{name: (builder, size multiplier)}; builders return (net, note) and run lazily (GFPGAN takes seconds)."""
    refs = {}
    if 'nafnet' not in args.skip:
        def nafnet():
            config = None
            if args.tiny:
                config = dict(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 1],
                              dec_blk_nums=[1, 1, 1, 1])
            net, source = build_nafnet(config)
            return net, f'NAFNet-width32 GoPro config ({source}), random weights'
        refs['nafnet_w32'] = (nafnet, 1)
    if 'gfpgan' not in args.skip:
        def gfpgan():
            size = 2 * args.sizes[0]
            if args.tiny:
                net = build_gfpgan_v1_clean(out_size=size, channel_multiplier=1, num_style_feat=32, narrow=0.125)
            else:
                net = build_gfpgan_v1_clean(out_size=size)
            return net, f'GFPGANv1Clean (gfpgan==1.3.8) at {size}², GFPGANer configuration, random weights'
        refs['gfpgan_v1_clean'] = (gfpgan, 2)
    if 'plain' not in args.skip:
        def plain():
            net = plain_unet_like(smfd_unet_params)
            return net, f'plain U-Net, base width {net.down[0][0].out_channels}, matched to SMFDUNet parameters'
        refs['plain_unet'] = (plain, 1)
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
    if 'autocast' not in args.skip:
        variants.append('autocast')
        if 'channels_last' not in args.skip:
            variants.append('channels_last+autocast')
    if 'compile' not in args.skip:
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
            macs = {} if 'macs' in args.skip else count_macs(net, make_inputs(1, size, 'cpu'))
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


def build_reference_cases(args, device, names, cases, smfd_unet_params):
    info = {}
    for name, (builder, multiplier) in reference_networks(args, smfd_unet_params).items():
        if name not in names:
            continue
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
            info[name][f'macs_{size}'] = count_macs(net, (torch.rand(1, 3, size, size),))  # on CPU
        gmacs = info[name].get(f'macs_{size}', {}).get('gmacs')
        net = net.to(device)
        for batch in args.batches:
            x = torch.rand(batch, 3, size, size, device=device)

            def call(net=net, x=x):
                with torch.inference_mode():
                    return net(x)
            cases.append(Case(name, 'eager', size, batch, call, gmacs))
    return info


def case_results(cases, failed, group):
    results = list(failed)
    for case in cases:
        if case.error is not None or not case.times:
            results.append(error_record(case.model, case.variant, case.size, case.batch,
                                        RuntimeError(case.error or 'no timing')))
            continue
        rec = case_record(case.model, case.variant, case.size, case.batch, case.first, case.times, case.gmacs)
        rec.update(case.extra)
        results.append(rec)
    for rec in results:
        rec['group'] = group  # cases of one group were timed interleaved: compare within a group
    return results


# ----------------------------------------------------------------------------------------------- analysis
def find(results, model, variant, batch, size=None, group=None):
    for rec in results:
        if (rec['model'] == model and rec['variant'] == variant and rec['batch'] == batch
                and (size is None or rec['size'] == size) and (group is None or rec['group'] == group)
                and 'error' not in rec):
            return rec
    return None


def find_pair(results, model, variant, ref, batch, size):
    """(case, reference) timed in the same group (the reference's), or (None, None)."""
    reference = find(results, ref, 'eager', batch)
    if reference is None:
        return None, None
    case = find(results, model, variant, batch, size, group=reference['group'])
    return (case, reference) if case else (None, None)


def add_speedups(results):
    for rec in results:
        if 'error' in rec or rec['model'] not in SMFD_MODELS:
            continue
        eager = find(results, rec['model'], 'eager', rec['batch'], rec['size'], group=rec['group'])
        if eager:
            rec['speedup_vs_eager'] = eager['median_s'] / rec['median_s']


def comparisons(results, args):
    """Per-face time ratios case / reference at the same batch (< 1: the case is faster)."""
    size = args.sizes[0]
    pairs = [('cascade', 'eager', 'nafnet_w32', 'cascade vs NAFNet-w32 per face, same size, eager fp32'),
             ('cascade', 'eager', 'gfpgan_v1_clean', 'cascade per face vs GFPGAN per 2×-size face, eager fp32'),
             ('smfd_unet', 'eager', 'plain_unet', 'SMFDUNet vs plain U-Net of equal parameters, eager fp32')]
    rows = []
    for batch in args.batches:
        for model, variant, ref, what in pairs:
            case, reference = find_pair(results, model, variant, ref, batch, size)
            if case and reference:
                rows.append({'case': f'{model}/{variant}', 'reference': f'{ref}/eager', 'batch': batch,
                             'ratio': case['ms_per_face'] / reference['ms_per_face'], 'what': what})
        naf = find(results, 'nafnet_w32', 'eager', batch)
        best = best_variant(results, 'cascade', batch, size, naf['group']) if naf else None
        if best and naf:
            rows.append({'case': f'cascade/{best["variant"]}', 'reference': 'nafnet_w32/eager', 'batch': batch,
                         'ratio': best['ms_per_face'] / naf['ms_per_face'],
                         'what': 'fastest cascade variant of this run vs NAFNet-w32 eager'})
    return rows


def best_variant(results, model, batch, size, group):
    cands = [r for r in results if r['model'] == model and r['batch'] == batch and r['size'] == size
             and r['group'] == group and 'error' not in r]
    return min(cands, key=lambda r: r['median_s']) if cands else None


def evaluate_targets(results, peaks, args, device):
    size = args.sizes[0]
    out = []
    for batch in args.batches:
        case, naf = find_pair(results, 'cascade', 'eager', 'nafnet_w32', batch, size)
        out.append(target(f'cascade faster than NAFNet-w32 per {size}² face (b{batch})',
                          case['ms_per_face'] / naf['ms_per_face'] if case and naf else None, 1.0, '<',
                          'time ratio cascade/NAFNet, eager fp32, same batch'))
        case, gfp = find_pair(results, 'cascade', 'eager', 'gfpgan_v1_clean', batch, size)
        out.append(target(f'cascade {size}² face ≤ {GFPGAN_RATIO_TARGET}× GFPGAN {2 * size}² face (b{batch})',
                          case['ms_per_face'] / gfp['ms_per_face'] if case and gfp else None, GFPGAN_RATIO_TARGET,
                          '<=', 'time ratio cascade/GFPGANv1Clean, eager fp32, same batch'))
    conv = (peaks or {}).get('conv3x3_channels_last', {}).get('gflops')
    batch = max(args.batches)
    for model in ('smfd_unet', 'cascade'):
        rec = find(results, model, 'channels_last', batch, size)
        value = rec['gflops_achieved'] / conv if rec and conv and 'gflops_achieved' in rec else None
        out.append(target(f'{model} ≥ {CONV_FRACTION_TARGET:.0%} of measured channels_last conv GFLOP/s (b{batch})',
                          value, CONV_FRACTION_TARGET, '>=',
                          'achieved GFLOP/s (fvcore MACs × 2 / time), channels_last fp32 / 3×3 conv peak'))
    for model in SMFD_MODELS:
        for batch in args.batches:
            onnx = find(results, model, 'onnxruntime', batch, size)
            eager = find(results, model, 'eager', batch, size, group=onnx['group']) if onnx else None
            value = eager['median_s'] / onnx['median_s'] if eager and onnx else None
            t = target(f'{model}: onnxruntime ≥ {ONNX_SPEEDUP_TARGET}× eager on CPU (b{batch})', value,
                       ONNX_SPEEDUP_TARGET, '>=', 'eager fp32 time / onnxruntime fp32 time')
            if device.type != 'cpu':
                t['met'] = None
                t['measured_as'] += ' (CPU-only target: not evaluated on this device)'
            out.append(t)
    return out


def print_tables(report):
    env = report['environment']
    print(f'\n{env["cpu_model"]}, {env["torch_threads"]} threads, torch {env["torch"]}, onnxruntime '
          f'{env["onnxruntime"]}, device {env["device"]}{" (" + env["gpu"] + ")" if "gpu" in env else ""}, '
          f'{env["date"]}, load {env["load_avg_1_5_15"]} → {report["load_avg_end"]}\n')
    rows = []
    for rec in report['cases']:
        row = dict(rec)
        if 'error' in rec:
            row['ms_per_face'] = 'FAILED: ' + rec['error'][:60].replace('|', '/').replace('\n', ' ')
        rows.append(row)
    columns = [('group', 'timed with'), ('model', 'model'), ('variant', 'variant'), ('size', 'size'),
               ('batch', 'batch'),
               ('ms_per_face', 'ms/face'), ('faces_per_s', 'faces/s'), ('gflops_achieved', 'GFLOP/s'),
               ('speedup_vs_eager', '× eager'), ('psnr_vs_eager_db', 'PSNR vs eager dB'),
               ('first_call_s', 'first call s')]
    print(format_table(rows, columns, title='Inference (median of raw timings)'))
    nets = [{'network': name, 'params_M': info.get('params', 0) / 1e6 if 'params' in info else None,
             'gmacs': next((v.get('gmacs') for k, v in info.items() if k.startswith('macs_')), None),
             'note': info.get('note') or info.get('error', '')[:80]}
            for name, info in {**report['networks'], **report['references']}.items()]
    print()
    print(format_table(nets, [('network', 'network'), ('params_M', 'params (M)'), ('gmacs', 'GMACs/face'),
                              ('note', 'note')], title='Networks (GMACs at the size timed)'))
    if report['peaks']:
        print()
        print(format_table([{'kernel': k, **v} for k, v in report['peaks'].items()],
                           [('kernel', 'kernel'), ('shape', 'shape'), ('gflops', 'GFLOP/s')],
                           title='Measured ceilings (fp32)'))
    print()
    print(format_table(report['comparisons'], [('case', 'case'), ('reference', 'reference'), ('batch', 'batch'),
                                               ('ratio', 'time/face ratio'), ('what', 'what')],
                       title='Comparisons in this run (ratio < 1: case faster)'))
    print()
    print(targets_table(report['targets']))


def main(argv=None):
    args = parse_args(argv)
    device = setup_device(args)
    amp = 'fp16' if device.type == 'cuda' else 'bf16'
    report = {'script': 'bench_inference', 'environment': environment(device, args.threads),
              'settings': {'sizes': args.sizes, 'batches': args.batches, 'repeats': args.repeats,
                           'warmup': args.warmup, 'skip': sorted(args.skip), 'timing': 'interleaved rounds',
                           'quick': args.quick, 'tiny': args.tiny, 'autocast_dtype': amp}}
    print(f'Device {device}, {torch.get_num_threads()} threads, sizes {args.sizes}, batches {args.batches}')
    quick = args.quick or args.tiny
    peaks_before = {} if 'peaks' in args.skip else measure_peaks(device, quick, repeats=max(3, args.repeats))
    # Each SMFD network is timed interleaved with the references it is compared against; the groups run one
    # after the other, so that the memory of one group (onnxruntime keeps its arena) is freed before the next.
    # GFPGAN at batch 16, 512² peaks at ~11 GiB: it gets its own group with the cascade's eager variant.
    variants = smfd_variants(args)
    groups = [('mask_generator', variants, ()), ('smfd_unet', variants, ('plain_unet',)),
              ('cascade', variants, ('nafnet_w32',)), ('cascade', ['eager'], ('gfpgan_v1_clean',))]
    nets = smfd_networks(args.tiny)
    smfd_unet_params = count_parameters(nets['smfd_unet'][0])
    report['networks'], report['references'], results = {}, {}, []
    with tempfile.TemporaryDirectory(prefix='smfd_bench_onnx_') as tmpdir:
        for name, group_variants, refs in groups:
            refs = [r for r in refs if r.split('_')[0] not in args.skip]
            if group_variants == ['eager'] and not refs:
                continue  # only there for a skipped reference
            group = '+'.join([name] + refs)
            print(f'Group {group}:')
            cases, failed = [], []
            info, checks = build_smfd_cases(args, device, amp, tmpdir, nets, [name], group_variants, cases, failed)
            report['networks'].update(info)
            report['references'].update(build_reference_cases(args, device, refs, cases, smfd_unet_params))
            run_rounds(cases, device, args)
            run_accuracy_checks(checks)
            results.extend(case_results(cases, failed, group))
            del cases, checks, failed
            release_memory()
    peaks_after = {} if 'peaks' in args.skip else measure_peaks(device, quick, repeats=max(3, args.repeats))
    # the ceiling is the better of the measurements taken before and after the cases (load drifts)
    report['peaks'] = {k: max(peaks_before[k], peaks_after[k], key=lambda p: p['gflops']) for k in peaks_before}
    report['peaks_before_after'] = {'before': peaks_before, 'after': peaks_after}
    add_speedups(results)
    report['cases'] = results
    report['comparisons'] = comparisons(results, args)
    report['targets'] = evaluate_targets(results, report['peaks'], args, device)
    report['load_avg_end'] = environment(device, args.threads)['load_avg_1_5_15']
    write_json(args.json, report)
    print_tables(report)
    print(f'\nWrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
