"""Five-fold cross-validation of an SMFD-UNet option file (paper §3.4.6.2, Table 4.4).

    python scripts/cross_validate.py -opt options/train_smfd.yml --testset datasets/smfd_test [--folds 1 2 3 4 5]
    python scripts/cross_validate.py -opt options/train_smfd.yml --dry-run      # print the per-fold option files

For fold k the option file is rewritten so that ``datasets.train.meta_info_file`` is ``fold{k}_train.txt`` and every
validation dataset's is ``fold{k}_val.txt`` (the prepared layout's ``meta_info/``, written by
scripts/prepare_celebamask_hq.py), and ``name`` gets a ``_fold{k}`` suffix. Each fold is trained by BasicSR's own
entry in a subprocess (``python -m basicsr.train -opt OUT/options/fold{k}.yml``), then its best checkpoint
(``net_g_best.pth``, else the latest) is tested with scripts/benchmark.py's evaluation: on ``--testset`` (the
held-out 20 %, the same for every fold), or without it on the fold's own validation split degraded by
scripts/degrade_testset.py. PSNR/SSIM per fold and mean ± SD go to OUT/cross_validation.{md,json}.

SD is the population standard deviation (ddof = 0): it reproduces Table 4.4's 24.4687 ± 0.2289 from its five folds.
A fold whose experiment already has ``models/net_g_latest.pth`` is not trained again (use --force).
"""
import argparse
import copy
import os
import subprocess
import sys

import numpy as np
import yaml

from smfd_basicsr import register
from smfd_data.atomic_io import atomic_write_json, atomic_write_text
from smfd_data.option_file import read_option
from smfd_eval import benchmark
from smfd_eval.methods import smfd_method
from smfd_inference.loading import pick_checkpoint, resolve_device

FOLDS = (1, 2, 3, 4, 5)


def log(message):
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Aggregation (Table 4.4)
# ----------------------------------------------------------------------------------------------------------------
def mean_sd(values):
    """(mean, population SD) of a list of numbers; (nan, nan) when empty."""
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return float('nan'), float('nan')
    return float(values.mean()), float(values.std(ddof=0))


def aggregate(per_run, keys=('psnr', 'ssim')):
    """``{key: {'mean', 'sd', 'values'}}`` over a list of ``{key: value}`` dicts (one per fold / run)."""
    summary = {}
    for key in keys:
        values = [run.get(key) for run in per_run]
        mean, sd = mean_sd(values)
        summary[key] = {'mean': mean, 'sd': sd, 'values': values}
    return summary


def format_cv_markdown(per_fold, summary, title):
    """Table 4.4's layout: one row per fold, then Mean ± SD (PSNR in dB with 4 decimals, SSIM in %)."""
    lines = [title, '', '| Fold | PSNR ↑ | SSIM (%) ↑ |', '|---|---|---|']
    for fold in per_fold:
        lines.append(f'| Fold {fold["fold"]} | {fold["psnr"]:.4f} | {100 * fold["ssim"]:.2f} |')
    p, s = summary['psnr'], summary['ssim']
    lines.append(f'| Mean ± SD | {p["mean"]:.4f} ± {p["sd"]:.4f} | {100 * s["mean"]:.2f} ± {100 * s["sd"]:.2f} |')
    lines += ['', 'SD: population standard deviation (ddof = 0), as in the paper\'s Table 4.4.', '']
    return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Option files, training and evaluation (shared with scripts/run_ablations.py)
# ----------------------------------------------------------------------------------------------------------------
def dump_yaml(opt):
    return yaml.safe_dump(opt, sort_keys=False, default_flow_style=None, width=120)


def write_yaml(path, opt):
    atomic_write_text(path, dump_yaml(opt))
    return path


def _phases(opt, prefix):
    return [name for name in (opt.get('datasets') or {}) if str(name).split('_')[0] == prefix]


def meta_info_dir(opt, source='options'):
    """The prepared layout's meta_info/ folder: next to the train split file, else <dataroot_gt parent>/meta_info."""
    train = (opt.get('datasets') or {}).get('train') or {}
    if train.get('meta_info_file'):
        return os.path.dirname(train['meta_info_file'])
    if train.get('dataroot_gt'):
        return os.path.join(os.path.dirname(os.path.normpath(train['dataroot_gt'])), 'meta_info')
    raise ValueError(f'{source}: datasets.train has neither meta_info_file nor dataroot_gt; pass --meta-dir')


def fold_option(opt, fold, meta_dir, check_files=True):
    """A copy of ``opt`` for fold k: renamed ``<name>_fold{k}``, train/val splits set to fold{k}_{train,val}.txt."""
    opt = copy.deepcopy(opt)
    opt['name'] = f'{opt["name"]}_fold{fold}'
    datasets = opt.get('datasets') or {}
    if 'train' not in datasets:
        raise ValueError('cross-validation needs datasets.train in the option file')
    files = {'train': os.path.join(meta_dir, f'fold{fold}_train.txt'),
             'val': os.path.join(meta_dir, f'fold{fold}_val.txt')}
    for split, path in files.items():
        if check_files and not os.path.isfile(path):
            raise FileNotFoundError(f'{path}: fold split missing (scripts/prepare_celebamask_hq.py writes '
                                    f'fold1..5 files into meta_info/)')
    datasets['train']['meta_info_file'] = files['train']
    for phase in _phases(opt, 'val'):
        datasets[phase]['meta_info_file'] = files['val']
    return opt


def trained_checkpoint(name, experiments_dir='experiments'):
    return pick_checkpoint(os.path.join(experiments_dir, name, 'models'))


def train(opt_path, name, experiments_dir='experiments', force=False, auto_resume=True, extra_env=None):
    """Train with BasicSR's own entry in a subprocess, unless ``experiments/<name>/models/net_g_latest.pth`` exists."""
    latest = os.path.join(experiments_dir, name, 'models', 'net_g_latest.pth')
    if os.path.isfile(latest) and not force:
        log(f'skip training {name}: {latest} exists (--force retrains)')
        return
    command = [sys.executable, '-m', 'basicsr.train', '-opt', opt_path] + (['--auto_resume'] if auto_resume else [])
    log(f'train {name}: {" ".join(command)}')
    env = dict(os.environ, **(extra_env or {}))
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise RuntimeError(f'training {name} failed (exit {result.returncode}): {" ".join(command)}')


def evaluate_experiment(name, opt, testset, out_dir, device='cpu', experiments_dir='experiments', mask=None):
    """PSNR/SSIM (and the rest of the benchmark's per-image metrics) of a trained SMFD experiment on ``testset``.

    ``mask``: gt | generator; default: the option's ``mask_source`` (gt when absent).
    """
    ckpt = trained_checkpoint(name, experiments_dir)
    if ckpt is None:
        raise FileNotFoundError(f'{os.path.join(experiments_dir, name, "models")}: no checkpoint to evaluate')
    mask = mask or opt.get('mask_source', 'gt')
    method = smfd_method(f'{name}={ckpt},mask={mask}', device, experiments_dir)
    result = benchmark.evaluate(benchmark.load_testset(testset), [method], out_dir, device,
                                skip=('niqe', 'lpips', 'fid', 'identity'), log=log)
    row = result['rows'][0]
    if 'error' in row:
        raise RuntimeError(f'evaluating {name} failed: {row["error"]}')
    return {'name': name, 'checkpoint': ckpt, 'mask': mask, 'testset': os.path.abspath(testset),
            **{k: row[k] for k in ('psnr', 'ssim', 'mse', 'psnr_face', 'ssim_face')}}


def degraded_val_set(opt_path, out):
    """The fold's validation split, degraded deterministically (scripts/degrade_testset.py, phase val)."""
    from smfd_data.degraded_dataset import write_degraded_set
    if not os.path.isfile(os.path.join(out, 'params.json')):
        write_degraded_set(opt_path, out, phase='val')
    return out


# ----------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('-opt', required=True, help='SMFD-UNet training option YAML (BasicSR format)')
    p.add_argument('--folds', type=int, nargs='+', default=list(FOLDS), help='which folds (default 1 2 3 4 5)')
    p.add_argument('--meta-dir', help='folder of fold{k}_{train,val}.txt (default: next to the train split file)')
    p.add_argument('--testset', help='degraded test set to evaluate every fold on (default: the fold\'s val split)')
    p.add_argument('--out', help='output folder (default results/cross_validation/<name>)')
    p.add_argument('--mask', choices=['gt', 'generator'], help='masks at evaluation (default: mask_source)')
    add_run_options(p, 'folds', 'print the per-fold option files and exit')
    return p


def add_run_options(parser, units, dry_run_help):
    """The options that cross-validation and the ablations share: where and whether to train ``units``."""
    parser.add_argument('--device', default='auto')
    parser.add_argument('--experiments-dir', default='experiments')
    parser.add_argument('--force', action='store_true', help=f'retrain {units} that already have a checkpoint')
    parser.add_argument('--dry-run', action='store_true', help=dry_run_help)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        opt = read_option(args.opt)
        meta_dir = args.meta_dir or meta_info_dir(opt, args.opt)
        folds = [(k, fold_option(opt, k, meta_dir, check_files=not args.dry_run)) for k in args.folds]
    except (FileNotFoundError, ValueError, KeyError) as err:
        log(f'cross_validate: error: {err}')
        return 2
    out = args.out or os.path.join('results', 'cross_validation', opt['name'])
    if args.dry_run:
        for k, fold_opt in folds:
            print(f'# ---- fold {k}: {os.path.join(out, "options", f"fold{k}.yml")}\n'
                  f'# python -m basicsr.train -opt {os.path.join(out, "options", f"fold{k}.yml")} --auto_resume')
            print(dump_yaml(fold_opt))
        return 0
    register()
    device = resolve_device(args.device)
    per_fold = []
    for k, fold_opt in folds:
        opt_path = write_yaml(os.path.join(out, 'options', f'fold{k}.yml'), fold_opt)
        train(opt_path, fold_opt['name'], args.experiments_dir, args.force)
        testset = args.testset or degraded_val_set(opt_path, os.path.join(out, f'fold{k}', 'valset'))
        scores = evaluate_experiment(fold_opt['name'], fold_opt, testset, os.path.join(out, f'fold{k}', 'eval'),
                                     device, args.experiments_dir, args.mask)
        per_fold.append({'fold': k, **scores})
        log(f'fold {k}: PSNR {scores["psnr"]:.4f} dB, SSIM {scores["ssim"]:.4f}')
    summary = aggregate(per_fold)
    markdown = format_cv_markdown(per_fold, summary, f'Cross-validation of {args.opt} ({len(per_fold)} folds)')
    atomic_write_json({'option': args.opt, 'folds': per_fold, 'summary': summary},
                      os.path.join(out, 'cross_validation.json'))
    atomic_write_text(os.path.join(out, 'cross_validation.md'), markdown)
    print(markdown)
    return 0

