"""The ablation study of Table 4.3: train and test every option file of options/ablations/, one table.

    python scripts/run_ablations.py --testset datasets/smfd_test [--opts 'options/ablations/*.yml'] [--runs 3]
    python scripts/run_ablations.py --dry-run
    python scripts/run_ablations.py --costs [--size 256]     # params and GMACs per row, nothing trained

Each option file is one configuration (e.g. backbone without the mask branch, traditional / transposed /
pixel-shuffle attention upsampling, with or without the post-processing block). Its label in the table comes from
the first ``#`` comment line of the file (``row "..."`` and ``paper: PSNR x, SSIM y%`` are picked out of it), else
its ``name``. Every configuration is trained by BasicSR's own entry in
a subprocess (``python -m basicsr.train -opt ...``; skipped when ``experiments/<name>/models/net_g_latest.pth``
exists, unless --force) and tested on ``--testset`` (default: its own validation split, degraded by
scripts/degrade_testset.py) with scripts/benchmark.py's evaluation, masks as its ``mask_source`` says.
``--runs N`` repeats each configuration with seeds manual_seed + i (names ``<name>_run{i}``) and reports mean ± SD
(population SD, as scripts/cross_validation.py). Writes OUT/ablations.{md,json} (default OUT: results/ablations).

Every row reports its network's parameters, the ratio to the pixel-shuffle row (``attention_pixelshuffle.yml``;
the size-matched transpose / traditional-upsampling rows are within 5 % of it, so that the upsampling comparison
is not a capacity comparison) and its GMACs for one ``--size``² face (fvcore, batch 1). ``--costs`` prints only
that table.
"""
import argparse
import copy
import glob
import os
import re

from smfd_basicsr import register
from smfd_data.atomic_io import atomic_write_json, atomic_write_text
from smfd_data.option_file import read_option
from smfd_eval import cross_validation
from smfd_eval.cross_validation import aggregate, dump_yaml, log
from smfd_inference.loading import resolve_device

DEFAULT_OPTS = os.path.join('options', 'ablations', '*.yml')
REFERENCE_ROW = 'attention_pixelshuffle.yml'  # Table 4.3's pixel-shuffle row: the capacity the others are matched to


def label_of(path, opt):
    """(label, paper PSNR, paper SSIM) from the first ``#`` comment line of the YAML file.

    ``# Table 4.3 ablation, row "Backbone + ..." (paper: PSNR 24.14, SSIM 70.42%):`` gives the quoted row name and
    the paper's numbers; any other comment line is the label itself; no comment: the option ``name``.
    """
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith('#') and line.lstrip('#').strip():
                text = line.lstrip('#').strip()
                row = re.search(r'row "([^"]+)"', text)
                paper = re.search(r'paper: PSNR ([0-9.]+), SSIM ([0-9.]+)%', text)
                return ((row.group(1) if row else text), float(paper.group(1)) if paper else None,
                        float(paper.group(2)) / 100 if paper else None)
            if line and not line.startswith('#'):
                break
    return opt.get('name', os.path.splitext(os.path.basename(path))[0]), None, None


def network_cost(network_opt, size=256):
    """``(params, GMACs)`` of a ``network_g`` for one size² face (batch 1, CPU, random weights); GMACs is
    'unavailable (reason)' when fvcore cannot trace it."""
    import torch
    from basicsr.archs import build_network

    from smfd_arch.blocks import count_parameters
    from smfd_eval.timing import count_macs

    net = build_network(dict(network_opt)).eval()
    inputs = (torch.rand(1, 3, size, size), )
    if getattr(net, 'use_mask', False):
        inputs += (torch.zeros(1, size, size, dtype=torch.long), )  # labels; the one-hot costs no MACs
    result = count_macs(net, inputs)
    gmacs = result['gmacs'] if 'gmacs' in result else f'unavailable ({result["error"][:80]})'
    return count_parameters(net), gmacs


def cost_rows(configs, size=256):
    """One ``{'label', 'option', 'params', 'gmacs', 'params_ratio'}`` per configuration; ``params_ratio`` relative
    to the pixel-shuffle row when it is among them."""
    rows = [{'label': label, 'option': path, **dict(zip(('params', 'gmacs'), network_cost(runs[0]['network_g'],
                                                                                          size)))}
            for path, label, _, _, runs in configs]
    reference = next((r['params'] for r in rows if os.path.basename(r['option']) == REFERENCE_ROW), None)
    for row in rows:
        row['params_ratio'] = row['params'] / reference if reference else None
    return rows


def format_cost_markdown(rows, size):
    lines = [f'| Configuration | option | params | vs pixel-shuffle | GMACs ({size}²) |', '|---|---|---|---|---|']
    for r in rows:
        ratio = '—' if r['params_ratio'] is None else f'{100 * (r["params_ratio"] - 1):+.1f} %'
        gmacs = f'{r["gmacs"]:.2f}' if isinstance(r['gmacs'], float) else r['gmacs']
        lines.append(f'| {r["label"]} | {os.path.basename(r["option"])} | {r["params"]:,} | {ratio} | {gmacs} |')
    return '\n'.join(lines) + '\n'


def run_options(opt, runs):
    """The option dicts of the repeated runs (one run: the option unchanged)."""
    if runs == 1:
        return [opt]
    copies = []
    for i in range(runs):
        run = copy.deepcopy(opt)
        run['name'] = f'{opt["name"]}_run{i}'
        run['manual_seed'] = int(opt.get('manual_seed') or 0) + i
        copies.append(run)
    return copies


def format_ablation_markdown(rows, title):
    """Table 4.3's layout: Configuration | PSNR | SSIM (%) (mean ± SD when repeated) | the paper's numbers."""
    lines = [title, '', '| Configuration | PSNR ↑ | SSIM (%) ↑ | runs | paper PSNR | paper SSIM (%) |',
             '|---|---|---|---|---|---|']
    for row in rows:
        p, s = row['summary']['psnr'], row['summary']['ssim']
        if len(p['values']) > 1:
            cells = f'{p["mean"]:.2f} ± {p["sd"]:.2f} | {100 * s["mean"]:.2f} ± {100 * s["sd"]:.2f}'
        else:
            cells = f'{p["mean"]:.2f} | {100 * s["mean"]:.2f}'
        paper_psnr, paper_ssim = row.get('paper_psnr'), row.get('paper_ssim')
        paper = (f'{paper_psnr:.2f} | {100 * paper_ssim:.2f}' if paper_psnr is not None else '— | —')
        lines.append(f'| {row["label"]} | {cells} | {len(p["values"])} | {paper} |')
    return '\n'.join(lines + ['', 'The paper trained on CelebAMask-HQ at 256²; compare rankings, not values, with '
                              'other data or budgets.', ''])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--opts', nargs='+', default=[DEFAULT_OPTS], help='option files or globs (default %(default)s)')
    p.add_argument('--testset', help='degraded test set (default: each configuration\'s validation split)')
    p.add_argument('--out', default=os.path.join('results', 'ablations'))
    p.add_argument('--runs', type=int, default=1, help='repetitions per configuration (different seeds)')
    p.add_argument('--costs', action='store_true', help='print params and GMACs per row, train nothing')
    p.add_argument('--size', type=int, default=256, help='face side of the GMACs count (default %(default)s)')
    cross_validation.add_run_options(p, 'configurations', 'print the configurations and commands, train nothing')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    paths = sorted({p for pattern in args.opts for p in (glob.glob(pattern) or [pattern])})
    try:
        if args.runs < 1:
            raise ValueError('--runs must be >= 1')
        configs = []
        for path in paths:
            opt = read_option(path)
            configs.append((path, *label_of(path, opt), run_options(opt, args.runs)))
    except (FileNotFoundError, ValueError) as err:
        log(f'run_ablations: error: {err}')
        return 2
    if not configs:
        log(f'run_ablations: error: no option files match {args.opts}')
        return 2
    if args.costs:
        register()
        print(format_cost_markdown(cost_rows(configs, args.size), args.size), end='')
        return 0
    if args.dry_run:
        for path, label, _, _, runs in configs:
            for run in runs:
                target = os.path.join(args.out, 'options', f'{run["name"]}.yml')
                print(f'# ---- {label} ({path})\n# python -m basicsr.train -opt {target} --auto_resume')
                print(dump_yaml(run))
        return 0
    register()
    device = resolve_device(args.device)
    rows = []
    for path, label, paper_psnr, paper_ssim, runs in configs:
        scores = []
        for run in runs:
            opt_path = cross_validation.write_yaml(os.path.join(args.out, 'options', f'{run["name"]}.yml'), run)
            cross_validation.train(opt_path, run['name'], args.experiments_dir, args.force)
            testset = args.testset or cross_validation.degraded_val_set(
                opt_path, os.path.join(args.out, run['name'], 'valset'))
            scores.append(cross_validation.evaluate_experiment(run['name'], run, testset,
                                                             os.path.join(args.out, run['name'], 'eval'), device,
                                                             args.experiments_dir))
            log(f'{label} [{run["name"]}]: PSNR {scores[-1]["psnr"]:.2f} dB, SSIM {scores[-1]["ssim"]:.4f}')
        rows.append({'label': label, 'option': path, 'runs': scores, 'summary': aggregate(scores),
                     'paper_psnr': paper_psnr, 'paper_ssim': paper_ssim})
    costs = cost_rows(configs, args.size)
    for row, cost in zip(rows, costs):
        row.update(params=cost['params'], gmacs=cost['gmacs'], params_ratio=cost['params_ratio'])
    markdown = (format_ablation_markdown(rows, f'Ablations ({len(rows)} configurations)')
                + f'\nNetwork size per row:\n\n{format_cost_markdown(costs, args.size)}')
    atomic_write_json({'rows': rows}, os.path.join(args.out, 'ablations.json'))
    atomic_write_text(os.path.join(args.out, 'ablations.md'), markdown)
    print(markdown)
    return 0

