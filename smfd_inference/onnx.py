"""ONNX export of the SMFD networks, and running them with onnxruntime (scripts/export_onnx.py, deblur --onnx).

Three graphs (fp32, opset 17 by default, dynamic batch):

* `mask_generator.onnx`: blurry (B,3,H,W) RGB in [0,1] → mask logits (B,K,H,W) (§3.4.4; RGB→gray inside);
* `smfd_unet.onnx`: blurry (B,3,H,W) + mask (B,K,H,W) probabilities / one-hot → restored (B,3,H,W) (§3.4.5);
  without a mask input when the network was built with `use_mask: false`;
* `smfd_cascade.onnx`: blurry (B,3,H,W) → mask generator → softmax → SMFD-UNet → restored (B,3,H,W), one graph:
  the "generated masks" pipeline of Table 4.2, so deployment needs no Python between the two networks.

Dynamic H/W: both networks pad to a multiple of 2^levels and crop back (smfd_arch.blocks.pad_to_multiple). The
exporter traces Python control flow once, so the graph is traced on an input that needs padding (then the pad
amounts are shape computations in the graph and a zero pad is exact) and checked on several sizes with
onnxruntime; if any size disagrees, the graph is re-exported with fixed H×W (dynamic batch only) and the result
says so. Exporter: PyTorch's TorchScript-based one (`dynamo=False`); the torch.export-based default needs the
`onnxscript` package, which this environment does not install.
"""
import argparse
import os
import sys
import warnings

import numpy as np
import torch

from smfd_data.atomic_io import atomic_write_json, atomic_write_named
from smfd_data.option_file import read_option
from smfd_inference.cascade import SMFDCascade
from smfd_inference.loading import experiment_option
from smfd_models.checkpoint import load_weights

__all__ = ['build_networks', 'export_network', 'export_all', 'onnx_parity', 'OnnxRestorer', 'OnnxCascade',
           'PARITY_TOLERANCE', 'main']
GRAPHS = ('mask_generator', 'smfd_unet', 'smfd_cascade')

# max |Δ| between PyTorch fp32 and onnxruntime fp32 outputs on random inputs, relative to max(1, max |output|):
# plain 1e-4 for images in [0, 1]; trained mask generators emit logits of magnitude ~10-100, where fp32 rounding
# alone differs by more than 1e-4 absolute.
PARITY_TOLERANCE = 1e-4


def _network_kwargs(section, expected_type, where):
    kwargs = dict(section or {})
    net_type = kwargs.pop('type', expected_type)
    if net_type != expected_type:
        raise ValueError(f'{where}: type is {net_type!r}, expected {expected_type!r}')
    return kwargs


def build_networks(opt=None, weights=None, mask_weights=None):
    """(MaskGenerator, SMFDUNet) in eval mode, from a BasicSR option file's `network_mask` / `network_g`.

    Args:
        opt (str | dict | None): YAML path or dict; None → the default configurations. Without a
            `network_mask` there, the MaskGenerator's layout comes from the option file next to `mask_weights`
            (BasicSR copies it into `experiments/<name>/`), else the default.
        weights, mask_weights (str | None): BasicSR checkpoints (`params_ema`, else `params`); None → random
            initialisation with a warning (for testing the export, not for deployment).
    """
    from smfd_arch import MaskGenerator, SMFDUNet
    where = opt if isinstance(opt, str) else 'options'
    if isinstance(opt, str):
        opt = read_option(opt)
    opt = opt or {}
    unet = SMFDUNet(**_network_kwargs(opt.get('network_g'), 'SMFDUNet', f'{where}: network_g'))
    mask_section, mask_where = opt.get('network_mask'), f'{where}: network_mask'
    if mask_section is None and mask_weights:  # trained separately: its own experiment's option file
        mask_opt = experiment_option(mask_weights)
        if mask_opt is not None:
            mask_section, mask_where = read_option(mask_opt).get('network_g'), f'{mask_opt}: network_g'
    mask_kwargs = _network_kwargs(mask_section, 'MaskGenerator', mask_where)
    mask_kwargs.setdefault('num_classes', unet.num_mask_classes)
    mask_generator = MaskGenerator(**mask_kwargs)
    for net, path, name in ((unet, weights, 'SMFDUNet'), (mask_generator, mask_weights, 'MaskGenerator')):
        if path:
            load_weights(net, path)
        else:
            warnings.warn(f'No weights given for {name}: exporting a randomly initialised network (testing only)',
                          UserWarning, stacklevel=2)
    return mask_generator.eval(), unet.eval()


def _session(path, threads=None, providers=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider') if p in available]
    return ort.InferenceSession(os.fspath(path), sess_options=options, providers=providers)


def onnx_parity(net, path, example_sets, session=None):
    """max |Δ| between `net(*inputs)` and onnxruntime on each tuple of inputs in `example_sets`.

    Returns a list of {'shape': input 0 shape, 'max_abs_diff', 'max_abs_output', 'scaled_diff'}, where
    scaled_diff = max_abs_diff / max(1, max_abs_output) is what PARITY_TOLERANCE bounds.
    """
    session = session or _session(path)
    names = [i.name for i in session.get_inputs()]
    results = []
    with torch.no_grad():
        for inputs in example_sets:
            expected = net(*inputs).numpy()
            got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
            diff = float('inf') if got.shape != expected.shape else float(np.abs(got - expected).max())
            scale = max(1.0, float(np.abs(expected).max()))
            results.append({'shape': list(inputs[0].shape), 'max_abs_diff': diff, 'max_abs_output': scale,
                            'scaled_diff': diff / scale})
    return results


def _example_inputs(kind, num_classes, batch, h, w, generator):
    x = torch.rand(batch, 3, h, w, generator=generator)
    if kind == 'unet':
        probs = torch.softmax(4 * torch.randn(batch, num_classes, h, w, generator=generator), dim=1)
        return (x, probs)
    return (x,)


def export_network(net, path, kind, size=256, opset=17, dynamic_hw=True, num_classes=5, seed=0,
                   tolerance=PARITY_TOLERANCE):
    """Export `net` ('mask_generator' | 'unet' | 'cascade' inputs) to `path` and check parity with onnxruntime.

    Returns {'path', 'dynamic_hw', 'parity': [...], 'max_abs_diff', 'parity_ok', 'inputs', 'outputs'}.
    """
    path = os.fspath(path)
    net = net.eval()
    generator = torch.Generator().manual_seed(seed)
    with_mask = kind == 'unet' and getattr(net, 'use_mask', True)
    input_kind = 'unet' if with_mask else 'image'
    input_names = ['blurry', 'mask'] if with_mask else ['blurry']
    output_name = 'logits' if kind == 'mask_generator' else 'restored'
    odd = (size + 3, size + 5) if dynamic_hw else (size, size)  # needs padding: the pad is traced (module doc)
    check_sizes = [(size, size)] + ([odd, (max(16, size // 2) + 7, max(16, size // 2))] if dynamic_hw else [])

    def _export(trace_hw, dynamic):
        axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic else {0: 'batch'}
        example = _example_inputs(input_kind, num_classes, 1, *trace_hw, generator)

        def write_to(tmp):  # atomically, with normal permissions (mkstemp's file is 0600)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # TracerWarnings about shape → int: handled by the parity check
                torch.onnx.export(net, example, tmp, dynamo=False, opset_version=opset, input_names=input_names,
                                  output_names=[output_name], do_constant_folding=True,
                                  dynamic_axes={n: axes for n in input_names + [output_name]})

        atomic_write_named(path, write_to)
        sets = [_example_inputs(input_kind, num_classes, b, h, w, generator)
                for b, (h, w) in zip([2, 1, 3], check_sizes if dynamic else [(size, size)] * 2)]
        return onnx_parity(net, path, sets)

    parity = _export(odd, dynamic_hw)
    dynamic = dynamic_hw
    if dynamic_hw and max(p['scaled_diff'] for p in parity) > tolerance:
        warnings.warn(f'{path}: dynamic H/W export disagrees with PyTorch ({parity}); re-exporting at a fixed '
                      f'{size}x{size}', UserWarning, stacklevel=2)
        parity = _export((size, size), False)
        dynamic = False
    max_diff = max(p['max_abs_diff'] for p in parity)
    max_scaled = max(p['scaled_diff'] for p in parity)
    return {'path': path, 'dynamic_hw': dynamic, 'size': size, 'opset': opset, 'inputs': input_names,
            'outputs': [output_name], 'parity': parity, 'max_abs_diff': max_diff, 'max_scaled_diff': max_scaled,
            'parity_ok': bool(max_scaled <= tolerance)}


def export_all(mask_generator, unet, out_dir, size=256, opset=17, dynamic_hw=True, which=None):
    """Export the mask generator, SMFD-UNet and the cascade into `out_dir`; returns {name: export result}."""
    graphs = {
        'mask_generator': (mask_generator, 'mask_generator'),
        'smfd_unet': (unet, 'unet'),
        'smfd_cascade': (SMFDCascade(unet, mask_generator).eval(), 'cascade'),
    }
    results = {}
    for name in which or graphs:
        net, kind = graphs[name]
        results[name] = export_network(net, os.path.join(out_dir, f'{name}.onnx'), kind, size=size, opset=opset,
                                       dynamic_hw=dynamic_hw, num_classes=unet.num_mask_classes)
    return results


class OnnxRestorer:
    """Run an exported SMFD graph with onnxruntime: `OnnxRestorer(path).restore(batch) -> batch`.

    `batch`: (B,3,H,W) float RGB in [0,1], a torch tensor or numpy array (returned as the same type, on the same
    torch device). For `smfd_unet.onnx` pass the mask too: `restore(batch, mask)` with (B,K,H,W) probabilities.
    A graph exported with fixed H×W rejects other sizes with a ValueError naming the file.
    """

    def __init__(self, path, threads=None, providers=None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f'ONNX model not found: {self.path}')
        try:
            self.session = _session(self.path, threads=threads, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f'{self.path}: onnxruntime cannot load this model: {err}') from err
        self.inputs = self.session.get_inputs()
        self.input_names = [i.name for i in self.inputs]
        self.output_name = self.session.get_outputs()[0].name

    def _check(self, name, array, spec):
        if array.ndim != 4:
            raise ValueError(f'{self.path}: input {name!r} must be (B,C,H,W), got shape {array.shape}')
        for axis, want in enumerate(spec.shape):
            if isinstance(want, int) and array.shape[axis] != want:
                raise ValueError(f'{self.path}: input {name!r} has shape {array.shape} but the graph needs '
                                 f'{spec.shape} (exported with fixed H×W? re-export with the size you need)')

    def restore(self, batch, mask=None):
        is_torch = torch.is_tensor(batch)
        device = batch.device if is_torch else None
        arrays = [batch] + ([mask] if mask is not None else [])
        if len(arrays) != len(self.inputs):
            raise ValueError(f'{self.path}: the graph takes inputs {self.input_names}, got {len(arrays)} array(s)'
                             + (' (smfd_unet.onnx needs restore(batch, mask))' if len(self.inputs) == 2 else ''))
        feeds = {}
        for name, value, spec in zip(self.input_names, arrays, self.inputs):
            if torch.is_tensor(value):
                value = value.detach().float().cpu().numpy()
            value = np.ascontiguousarray(value, dtype=np.float32)
            self._check(name, value, spec)
            feeds[name] = value
        out = self.session.run([self.output_name], feeds)[0]
        return torch.from_numpy(out).to(device) if is_torch else out


class OnnxCascade:
    """The cascade run by onnxruntime on graphs written by ``scripts/export_onnx.py`` (same call as SMFDCascade).

    ``graph``: ``smfd_cascade.onnx`` (blurry → restored, one graph; no mask comes out) or ``smfd_unet.onnx``
    (blurry + mask → restored) together with ``mask_graph`` = ``mask_generator.onnx`` (blurry → logits).
    """

    def __init__(self, graph, mask_graph=None, threads=None):
        self.restorer = OnnxRestorer(graph, threads=threads)
        self.mask_generator = OnnxRestorer(mask_graph, threads=threads) if mask_graph else None
        self.use_mask = len(self.restorer.inputs) == 2
        if self.use_mask and self.mask_generator is None:
            raise ValueError(f'{graph}: this graph takes (blurry, mask); pass --mask-onnx mask_generator.onnx, '
                                 'or use smfd_cascade.onnx (mask generator inside)')
        shape = self.restorer.inputs[0].shape
        self.size = shape[2] if isinstance(shape[2], int) else None
        k = self.restorer.inputs[1].shape[1] if self.use_mask else None
        self.num_classes = k if isinstance(k, int) else 5

    def __call__(self, x, mask=None):
        if not self.use_mask:
            return self.restorer.restore(x).clamp(0, 1), None
        if mask is None:
            probs = torch.softmax(self.mask_generator.restore(x), dim=1)
        elif mask.is_floating_point():
            probs = mask
        else:
            probs = torch.nn.functional.one_hot(mask.long(), self.num_classes).permute(0, 3, 1, 2).float()
        return self.restorer.restore(x, probs).clamp(0, 1), probs.argmax(dim=1)


# ------------------------------------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', help='SMFDUNet checkpoint (BasicSR .pth: params_ema or params)')
    parser.add_argument('--mask-weights', help='MaskGenerator checkpoint (BasicSR .pth)')
    parser.add_argument('--opt', help='training YAML whose network_g / network_mask built the checkpoints '
                        '(default: the default configurations)')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--size', type=int, default=256, help='face size the graphs are traced and checked at')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--fixed-size', action='store_true', help='fixed H×W (only the batch is dynamic)')
    parser.add_argument('--only', default=','.join(GRAPHS), help=f'comma-separated subset of {",".join(GRAPHS)}')
    args = parser.parse_args(argv)
    which = [w for w in args.only.split(',') if w]
    unknown = sorted(set(which) - set(GRAPHS))
    if unknown:
        parser.error(f'--only: unknown graph(s) {unknown}; choose from {", ".join(GRAPHS)}')
    if args.size < 16:
        parser.error('--size must be at least 16 (the networks pool 4 times)')
    args.which = which
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        mask_generator, unet = build_networks(args.opt, args.weights, args.mask_weights)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as err:  # a bad file: one line, no traceback
        print(f'export_onnx: error: {err}', file=sys.stderr)
        return 2
    results = export_all(mask_generator, unet, args.output, size=args.size, opset=args.opset,
                         dynamic_hw=not args.fixed_size, which=args.which)
    failed = []
    for name, res in results.items():
        shapes = ', '.join(f'{"x".join(map(str, p["shape"]))}: {p["max_abs_diff"]:.2e} (max|output| '
                           f'{p["max_abs_output"]:.3g})' for p in res['parity'])
        hw = 'dynamic batch, H, W' if res['dynamic_hw'] else f'dynamic batch, fixed {args.size}x{args.size}'
        status = 'OK' if res['parity_ok'] else f'FAILED (> {PARITY_TOLERANCE:g} × max(1, max|output|))'
        print(f'{res["path"]}: {hw}; max|Δ| vs PyTorch fp32 ({shapes}) {status}')
        if not res['parity_ok']:
            failed.append(name)
    summary = {'weights': args.weights, 'mask_weights': args.mask_weights, 'opt': args.opt,
               'random_init': not (args.weights and args.mask_weights), 'tolerance': PARITY_TOLERANCE,
               'graphs': results}
    atomic_write_json(summary, os.path.join(args.output, 'export.json'))
    if failed:
        print(f'Parity check failed for {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0

