"""Table 4.1 on one degraded test set: MaskGenerator, UNet and UNet++ (any registered segmentation arch).

    python scripts/mask_benchmark.py --testset datasets/smfd_test19 --out results/mask_bench \\
        --net ours=options/train_mask_generator.yml:$E/SMFD_MaskGenerator/models/net_g_best.pth \\
        --net ours19=options/train_mask_generator_19class.yml:$E/SMFD_MaskGenerator_19class/models/net_g_best.pth \\
        --net unet=options/train_unet_baseline.yml:$E/SMFD_Baseline_UNet/models/net_g_best.pth \\
        --net unetpp=options/train_unetpp_baseline.yml:$E/SMFD_Baseline_UNetPlusPlus/models/net_g_best.pth

($E: experiments.)

Each net (``NAME=OPTION.yml:CHECKPOINT.pth``, the option's ``network_g``) predicts the mask of every blurry test
image (RGB in; nets with one input channel convert to gray with BT.601, §3.4.2). Columns:

- Dice and Jaccard on **5 groups** (§3.4.2, what the cascade uses): a 19-class prediction is grouped first (its
  probabilities summed per group, then argmax, as ``mask_handoff`` does), the GT labels are grouped too;
- Dice and Jaccard on **19 classes** (§3.4.4's softmax head): for 19-class nets on a 19-class test set, else "—";
- parameters (PyTorch) and the Keras count (+ 2 per BN channel, how the thesis' 5,414,751 / 31,401,605 /
  36,643,333 are counted), GMACs for one face at the test-set size (fvcore), and the paper's numbers for reference.

Dice/Jaccard per image are ``smfd_dice`` / ``smfd_jaccard`` (classes present in prediction or GT, averaged),
then averaged over images. A 19-class test set: ``scripts/degrade_testset.py ... --classes 19``. Writes
OUT/mask_benchmark.{md,json} and OUT/masks/<name>/<stem>.png (5-group labels).
"""
import argparse
import os
import sys

import numpy as np
import torch

from smfd_arch.blocks import count_bn_channels, count_parameters
from smfd_data.atomic_io import atomic_write_json, atomic_write_text
from smfd_data.face_labels import NUM_CELEBAMASK_CLASSES, grouping_lut
from smfd_data.image_io import write_image
from smfd_data.option_file import read_option
from smfd_eval.benchmark import load_testset
from smfd_eval.methods import NOT_APPLICABLE, count_gmacs, parse_spec, split_option_and_checkpoint
from smfd_inference.loading import InferenceError, build_network, network_option, resolve_device
from smfd_inference.restorer import images_to_batch
from smfd_models.checkpoint import WeightsUnavailable
from smfd_models.mask_source import handoff_mask
from smfd_models.metrics import smfd_dice, smfd_jaccard

GROUPS = 5
# Table 4.1 (Keras parameter counts; Dice / Jaccard in %)
PAPER = {'MaskGenerator': (5_414_751, 64.84, 55.72), 'UNet': (31_401_605, None, None),
         'UNetPlusPlus': (36_643_333, None, None)}


class SegNet(torch.nn.Module):
    """A segmentation arch with ``restore``-style output for the MACs probe: logits of the last head."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def logits(self, x):
        out = self.net(x)
        return out[-1] if isinstance(out, (list, tuple)) else out

    def restore(self, x):
        return self.logits(x), None


def load_net(text, device):
    """``NAME=OPTION.yml:CHECKPOINT.pth`` → ``(name, arch type, SegNet)``."""
    name, target, options = parse_spec(text, '--net')
    if options:
        raise ValueError(f'--net {name}: no options are taken, got {sorted(options)}')
    opt_path, ckpt = split_option_and_checkpoint(target, f'--net {name}')
    net_opt = network_option(read_option(opt_path), 'network_g', opt_path)
    return name, net_opt['type'], SegNet(build_network(net_opt, ckpt, 'auto', device)).eval()


@torch.no_grad()
def predict(net, samples, device, batch=8):
    """``(classes, predictions)``: the number of classes the net predicts (its logits' channels) and per image
    ``(labels of the net's classes, 5-group labels)`` as uint8 HW arrays."""
    out, k = [], None
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        x = images_to_batch([s['lq'].astype(np.float32) / 255.0 for s in chunk], device)
        logits = net.logits(x).float()
        k = logits.shape[1]
        own = logits.argmax(1)
        grouped = own if k == GROUPS else handoff_mask(logits, 'soft', GROUPS).argmax(1)
        out.extend(zip(own.to(torch.uint8).cpu().numpy(), grouped.to(torch.uint8).cpu().numpy()))
    return k, out


def net_cost(net, h, w):
    params = count_parameters(net)
    return params, params + 2 * count_bn_channels(net), count_gmacs(net, h, w, False, None)


def evaluate(testset, nets, device, out_dir=None, batch=8):
    """Rows of the table (see module doc) for ``nets`` = [(name, arch, SegNet)] on ``testset`` (load_testset)."""
    samples, k_set = testset['samples'], testset['num_classes']
    if k_set not in (GROUPS, NUM_CELEBAMASK_CLASSES):
        raise ValueError(f'{testset["folder"]}: test set with {k_set} classes; the mask benchmark grades 5 groups '
                         'and 19 classes')
    lut = grouping_lut()
    gt5 = [s['labels'] if k_set == GROUPS else lut[s['labels']] for s in samples]
    rows = []
    for name, arch, net in nets:
        k, predictions = predict(net, samples, device, batch)
        row = {'method': name, 'arch': arch, 'classes': k}
        row['dice_5'] = float(np.mean([smfd_dice(p5, g, GROUPS) for (_, p5), g in zip(predictions, gt5)]))
        row['jaccard_5'] = float(np.mean([smfd_jaccard(p5, g, GROUPS) for (_, p5), g in zip(predictions, gt5)]))
        if k == NUM_CELEBAMASK_CLASSES and k_set == NUM_CELEBAMASK_CLASSES:
            pairs = [(p, s['labels']) for (p, _), s in zip(predictions, samples)]
            row['dice_19'] = float(np.mean([smfd_dice(p, g, k) for p, g in pairs]))
            row['jaccard_19'] = float(np.mean([smfd_jaccard(p, g, k) for p, g in pairs]))
        else:
            reason = 'a 5-class net' if k != NUM_CELEBAMASK_CLASSES else 'the test set has 5-group labels'
            row['dice_19'] = row['jaccard_19'] = f'{NOT_APPLICABLE} ({reason})'
        h, w = samples[0]['gt'].shape[:2]
        row['params'], row['params_keras'], row['gmacs'] = net_cost(net, h, w)
        paper = PAPER.get(arch, (None, None, None))
        row['paper_params'], row['paper_dice'], row['paper_jaccard'] = paper
        if out_dir:
            for s, (_, p5) in zip(samples, predictions):
                write_image(os.path.join(out_dir, 'masks', name, f'{s["stem"]}.png'), p5)
        rows.append(row)
    return {'testset': os.path.abspath(testset['folder']), 'num_images': len(samples), 'test_classes': k_set,
            'size': list(samples[0]['gt'].shape[:2]), 'rows': rows}


def _cell(value, percent=False):
    if isinstance(value, float):
        return f'{100 * value:.2f}' if percent else f'{value:.3f}'
    if isinstance(value, int):
        return f'{value:,}'
    return '—' if value is None else str(value)


def format_markdown(result):
    h, w = result['size']
    lines = [f'Mask benchmark (Table 4.1): {result["num_images"]} images of {result["testset"]} '
             f'({result["test_classes"]}-class labels, {h}×{w})', '',
             '| method | arch | classes | Dice 5 (%) | Jaccard 5 (%) | Dice 19 (%) | Jaccard 19 (%) | params | '
             'Keras count | paper params | GMACs | paper Dice / Jaccard (%) |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in result['rows']:
        paper = ('—' if r['paper_dice'] is None else f'{r["paper_dice"]:.2f} / {r["paper_jaccard"]:.2f}')
        lines.append(' | '.join(['', r['method'], r['arch'], str(r['classes']), _cell(r['dice_5'], True),
                                 _cell(r['jaccard_5'], True), _cell(r['dice_19'], True), _cell(r['jaccard_19'], True),
                                 _cell(r['params']), _cell(r['params_keras']), _cell(r['paper_params']),
                                 _cell(r['gmacs']), paper, '']).strip())
    return '\n'.join(lines + ['', 'The paper does not say on how many classes its Dice was computed (§3.4.4 speaks '
                              'of a 19-class softmax, the cascade uses 5 groups): compare like with like.', ''])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--testset', required=True, help='degraded test set (scripts/degrade_testset.py, --classes 19)')
    p.add_argument('--out', required=True, help='output folder for mask_benchmark.{md,json} and masks/')
    p.add_argument('--net', action='append', default=[], metavar='NAME=OPTION.yml:CKPT.pth', required=True,
                   help='a segmentation net: option file with network_g + its checkpoint (repeatable)')
    p.add_argument('--device', default='auto', help='cpu | cuda | auto (default)')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--limit', type=int, default=None, help='only the first N test images')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
        testset = load_testset(args.testset, args.limit)
        nets = [load_net(text, device) for text in args.net]
        names = [n for n, _, _ in nets]
        if len(set(names)) != len(names):
            raise ValueError(f'--net names must be unique, got {names}')
        result = evaluate(testset, nets, device, args.out, args.batch)
    except (InferenceError, WeightsUnavailable, FileNotFoundError, ValueError, KeyError) as err:
        print(f'mask_benchmark: error: {err}', file=sys.stderr)
        return 2
    markdown = format_markdown(result)
    atomic_write_json(result, os.path.join(args.out, 'mask_benchmark.json'))
    atomic_write_text(os.path.join(args.out, 'mask_benchmark.md'), markdown)
    print(markdown, end='')
    return 0
