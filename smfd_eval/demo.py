"""`make demo`: the whole SMFD pipeline end to end on procedural synthetic faces, on a CPU, in minutes.

Stages (each skipped when its outputs exist, unless --force; a stage that runs makes the later ones run again):

1. synth      scripts/generate_synthetic_faces.py → datasets/demo/raw (CelebAMask-HQ layout, --num-faces faces)
2. prepare    scripts/prepare_celebamask_hq.py → datasets/demo/prepared (face size = the demo options' gt_size;
              80:20 trainval/test split, 5 folds)
3. testset    scripts/degrade_testset.py → datasets/demo/testset (--test-faces of the test split, seeded
              degradation: the SMFD demo option's validation settings)
4. train_mask python -m basicsr.train -opt options/demo/train_mask_generator_demo.yml   (BasicSR's own entry)
5. train_smfd python -m basicsr.train -opt options/demo/train_smfd_demo.yml
6. train_nomask python -m basicsr.train -opt options/demo/train_smfd_nomask_demo.yml  (Table 4.3's first row)
              (4–6 run at the same time, --jobs processes, one per core: small convolutions use two
              single-threaded processes better than one process with two threads)
7. basicsr_test python -m basicsr.test -opt options/demo/test_smfd_demo.yml            (BasicSR's test entry)
8. benchmark  scripts/benchmark.py's evaluation → results/demo/benchmark (input, Richardson–Lucy with the true
              kernels, the cascade with generated masks, SMFD-UNet with GT masks, the no-mask model)
9. report     results/demo/report.md + results/demo/report.png

The numbers show the pipeline working on synthetic faces with a budget of minutes, not the paper's
(CelebAMask-HQ, hundreds of epochs). Measured wall time: the report's stage table.
"""
import argparse
import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from smfd_basicsr import register
from smfd_data import celebamask_hq
from smfd_data.atomic_io import atomic_write_json, atomic_write_text, fsync_off
from smfd_data.face_labels import colorize
from smfd_data.image_io import read_image, read_labels, to_uint8, write_image
from smfd_data.option_file import read_option
from smfd_data.synthetic_faces import write_celebamask_tree
from smfd_eval import benchmark
from smfd_eval.methods import InputMethod, RichardsonLucyMethod, smfd_method
from smfd_eval.report import write_reports
from smfd_eval.timing import environment
from smfd_inference.loading import model_size, resolve_device
from smfd_models.visualize import picture_grid

STAGES = ('synth', 'prepare', 'testset', 'train_mask', 'train_smfd', 'train_nomask', 'basicsr_test',
          'benchmark', 'report')
# run concurrently (--jobs), started in this order: with 2 jobs the longest (SMFD-UNet) has a core to itself and
# the mask generator and then the no-mask model share the other
TRAININGS = ('train_mask', 'train_smfd', 'train_nomask')
DEPENDS = {  # a stage runs again when one of these ran in the same invocation
    'prepare': ('synth', ),
    'testset': ('prepare', ),
    'train_mask': ('prepare', ),
    'train_smfd': ('prepare', ),
    'train_nomask': ('prepare', ),
    'basicsr_test': ('train_mask', 'train_smfd', 'testset'),
    'benchmark': ('train_mask', 'train_smfd', 'train_nomask', 'testset'),
}
OPTION_FILES = {
    'mask': 'train_mask_generator_demo.yml',
    'smfd': 'train_smfd_demo.yml',
    'nomask': 'train_smfd_nomask_demo.yml',
    'test': 'test_smfd_demo.yml',
}
OPTIONS = {key: os.path.join('options', 'demo', name) for key, name in OPTION_FILES.items()}  # set by main()
RAW, PREPARED, TESTSET = (os.path.join('datasets', 'demo', d) for d in ('raw', 'prepared', 'testset'))
RESULTS = os.path.join('results', 'demo')
REPORT_FACES = 6
TEST_SEED = 2024  # validation uses the option's seed (0): another draw


def log(message):
    print(f'[demo] {message}', flush=True)


class StageFailed(RuntimeError):
    pass


def start_command(command, log_path, env=None):
    """Start ``command`` with its output (after the command line) in ``log_path`` and ``env`` added to the
    environment; returns ``(process, log file)``, the file to close once the process ended."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    f = open(log_path, 'w')
    try:
        f.write('$ ' + ' '.join(command) + '\n')
        f.flush()
        return subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {}))), f
    except BaseException:
        f.close()
        raise


def check_exit(proc, log_path):
    """Raise StageFailed with the tail of ``log_path`` when the ended ``proc`` failed."""
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-25:])
        raise StageFailed(f'{" ".join(proc.args)} failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}')


def run_command(command, log_path, env=None):
    """Run a subprocess with its output in ``log_path``; on failure raise with the log's tail."""
    proc, f = start_command(command, log_path, env)
    with f, proc:  # Popen's exit waits for the process
        try:
            proc.wait()
        except BaseException:  # Ctrl-C: do not leave the child running
            proc.kill()
            raise
    check_exit(proc, log_path)


def run_logged(what, fn, log_path):
    """Run ``fn()`` in this process with its output in ``log_path``; on failure raise with the error."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, 'w') as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            fn()
        except (FileNotFoundError, RuntimeError, ValueError, OSError) as err:
            raise StageFailed(f'{what} failed: {err} (log: {log_path})') from err


def option_name(path):
    return read_option(path)['name']


def face_size():
    return model_size(read_option(OPTIONS['smfd']), default=64)


def latest_checkpoint(key):
    return os.path.join('experiments', option_name(OPTIONS[key]), 'models', 'net_g_latest.pth')


# ----------------------------------------------------------------------------------------------------------------
# Stages: (done?, run)
# ----------------------------------------------------------------------------------------------------------------
def synth_done(args):
    folder = os.path.join(RAW, 'CelebA-HQ-img')
    return os.path.isdir(folder) and len(os.listdir(folder)) >= args.num_faces


def synth_run(args, fresh=True):
    size = 2 * face_size()  # prepare resizes to the face size (INTER_AREA), as for CelebAMask-HQ
    with fsync_off():  # regenerable data: atomic writes without the fsyncs (which cost more than the faces)
        run_logged('generating synthetic faces', lambda: write_celebamask_tree(
            RAW, args.num_faces, 0, img_size=size, mask_size=size, workers=args.workers, progress=False),
                   os.path.join(RESULTS, 'logs', 'synth.log'))


def prepare_done(args):
    return os.path.isfile(os.path.join(PREPARED, 'meta_info', 'fold5_val.txt'))


def prepare_run(args, fresh=True):
    if fresh and os.path.isdir(PREPARED):
        shutil.rmtree(PREPARED)  # new faces (or a new size): the resumable preparation would keep the old ones
    with fsync_off():
        run_logged('preparing the faces', lambda: celebamask_hq.main(
            ['-i', RAW, '-o', PREPARED, '--size', str(face_size()), '--workers', str(args.workers)]),
                   os.path.join(RESULTS, 'logs', 'prepare.log'))


TrainingStage = collections.namedtuple('TrainingStage', 'done command check')


def train_stage(key):
    """A training stage: ``done(args)``, ``command(fresh)`` → (command line, log path) and ``check(args)``, run
    as concurrent subprocesses by ``run_trainings``."""

    def done(args):
        return os.path.isfile(latest_checkpoint(key))

    def command(fresh):
        command = [sys.executable, '-m', 'basicsr.train', '-opt', OPTIONS[key]]
        if not fresh:
            command.append('--auto_resume')  # continue an interrupted run instead of starting over
        return command, os.path.join(RESULTS, 'logs', f'train_{key}.log')

    def check(args):
        if not done(args):
            raise StageFailed(f'training finished but {latest_checkpoint(key)} is missing')

    return TrainingStage(done, command, check)


def degraded_set_option(phase, meta_info, seed):
    """A dataset option for ``write_degraded_set``: the SMFD demo option's validation dataset (face size, grouping,
    degradation) on another split with another seed."""
    import yaml

    datasets = read_option(OPTIONS['smfd'])['datasets']
    dataset = dict(datasets['val'])
    for key in ('augment', 'use_shuffle', 'batch_size_per_gpu', 'num_worker_per_gpu', 'dataset_enlarge_ratio',
                'prefetch_mode', 'degrade_on_device', 'mask_root_pred'):
        dataset.pop(key, None)
    dataset.update(name=f'demo_{phase}', meta_info_file=os.path.join(PREPARED, 'meta_info', meta_info), seed=seed)
    path = os.path.join(RESULTS, f'{phase}set_option.yml')
    atomic_write_text(path, yaml.safe_dump({'name': f'demo_{phase}set', 'datasets': {phase: dataset}},
                                           sort_keys=False))
    return path


def testset_done(args):
    return os.path.isfile(os.path.join(TESTSET, 'params.json'))


def testset_run(args, fresh=True):
    """The test split through the SMFD demo option's validation settings (size, grouping, degradation)."""
    from smfd_data.degraded_dataset import write_degraded_set
    option = degraded_set_option('test', 'test.txt', TEST_SEED)
    with fsync_off():
        run_logged('writing the degraded test set', lambda: write_degraded_set(
            option, TESTSET, limit=args.test_faces, num_workers=args.workers),
                   os.path.join(RESULTS, 'logs', 'testset.log'))


def run_trainings(names, table, args, fresh):
    """Run the training stages ``names`` as concurrent subprocesses, ``args.jobs`` at a time, each with
    ``cpu_count // jobs`` threads. Returns {name: record}; a failure fails its stage only (the others finish and
    their checkpoints stay for the next run)."""
    if not names:  # every checkpoint exists (a rerun of make demo)
        return {}
    jobs = max(1, args.jobs)
    threads = str(max(1, (os.cpu_count() or 1) // min(jobs, len(names))))
    pending, running, records = list(names), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            command, log_path = table[name].command(fresh[name])
            proc, f = start_command(command, log_path, {'OMP_NUM_THREADS': threads, 'MKL_NUM_THREADS': threads})
            running[name] = (proc, f, log_path, time.time())
            log(f'{name}: running ({threads} thread{"s" if threads != "1" else ""}) ...')
        time.sleep(0.5)
        for name, (proc, f, log_path, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            f.close()
            del running[name]
            seconds = time.time() - t0
            try:
                check_exit(proc, log_path)
                table[name].check(args)
            except StageFailed as err:
                print(f'run_demo: stage {name} failed: {err}', file=sys.stderr)
                records[name] = {'status': 'failed', 'seconds': seconds}
                continue
            records[name] = {'status': 'ran', 'seconds': seconds, 'concurrent': len(names) > 1 and jobs > 1}
            log(f'{name}: done in {seconds:.1f} s')
    return records


def basicsr_test_done(args):
    if not os.path.isfile(OPTIONS['test']):
        return True  # nothing to run
    return os.path.isdir(os.path.join('results', option_name(OPTIONS['test'])))


def basicsr_test_run(args, fresh=True):
    run_command([sys.executable, '-m', 'basicsr.test', '-opt', OPTIONS['test']],
                os.path.join(RESULTS, 'logs', 'basicsr_test.log'))


def benchmark_dir():
    return os.path.join(RESULTS, 'benchmark')


def benchmark_done(args):
    return os.path.isfile(os.path.join(benchmark_dir(), 'benchmark.json'))


ROW_NAMES = {  # benchmark method name (folder names under results/demo/benchmark) → report label
    'input': 'blurry input',
    'richardson_lucy': 'Richardson–Lucy (true kernels)',
    'smfd_nomask': 'SMFD-UNet without mask branch',
    'smfd_generated_masks': 'SMFD-UNet + generated masks (cascade)',
    'smfd_gt_masks': 'SMFD-UNet + ground-truth masks',
}
CASCADE = 'smfd_generated_masks'


def benchmark_methods(device):
    smfd, mask, nomask = latest_checkpoint('smfd'), latest_checkpoint('mask'), latest_checkpoint('nomask')
    return [
        InputMethod('input'),
        RichardsonLucyMethod('richardson_lucy'),
        smfd_method(f'smfd_nomask={nomask}', device),
        smfd_method(f'{CASCADE}={smfd},mask=generator,mask_weights={mask}', device),
        smfd_method(f'smfd_gt_masks={smfd},mask=gt', device),
    ]


def benchmark_run(args, fresh=True):
    register()
    device = resolve_device(args.device)
    if os.path.isdir(benchmark_dir()):
        shutil.rmtree(benchmark_dir())
    result = benchmark.evaluate(benchmark.load_testset(TESTSET), benchmark_methods(device), benchmark_dir(), device,
                                offline=not args.download_metric_weights, grid_faces=REPORT_FACES,
                                log=lambda m: log(m))
    write_reports(result, benchmark_dir())


# ----------------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------------
def _number(value, fmt):
    return fmt.format(value) if isinstance(value, (int, float)) else str(value)


def report_table(result):
    """PSNR / SSIM / Dice of every row, and the differences to the blurry input and to the no-mask model."""
    rows = {r['method']: r for r in result['rows']}
    blurry, nomask = rows.get('input', {}), rows.get('smfd_nomask', {})

    def delta(row, ref, key, fmt):
        a, b = row.get(key), ref.get(key)
        if not all(isinstance(v, (int, float)) for v in (a, b)):
            return '—'
        return fmt.format(a - b)

    lines = ['| Method | PSNR (dB) ↑ | SSIM ↑ | mask Dice ↑ | ΔPSNR vs blurry | ΔSSIM vs blurry | '
             'ΔPSNR vs no-mask | ΔSSIM vs no-mask | params | ms/face |', '|---|' + '---|' * 9]
    for name, row in rows.items():
        lines.append(' | '.join([
            f'| {ROW_NAMES.get(name, name)}', _number(row.get('psnr'), '{:.2f}'), _number(row.get('ssim'), '{:.4f}'),
            _number(row.get('dice'), '{:.4f}'), delta(row, blurry, 'psnr', '{:+.2f}'),
            delta(row, blurry, 'ssim', '{:+.4f}'), delta(row, nomask, 'psnr', '{:+.2f}'),
            delta(row, nomask, 'ssim', '{:+.4f}'), _number(row.get('params'), '{:,}'),
            _number(row.get('ms_per_face'), '{:.1f}')
        ]) + ' |')
    return '\n'.join(lines)


def report_picture(result, path):
    """Rows: blurry / predicted mask / output (cascade) / sharp, for the first faces of the test set."""
    row = next((r for r in result['rows'] if r['method'] == CASCADE), {})
    if 'per_image' not in row:  # the cascade failed: its error is in the report's table
        return False
    stems = [p['stem'] for p in row['per_image']][:REPORT_FACES]
    k = result['num_classes']
    rows = [[read_image(os.path.join(TESTSET, 'lq', f'{s}.png')) for s in stems],
            [colorize(read_labels(os.path.join(benchmark_dir(), 'masks', CASCADE, f'{s}.png'), k), num_classes=k)
             for s in stems],
            [read_image(os.path.join(benchmark_dir(), 'outputs', CASCADE, f'{s}.png')) for s in stems],
            [read_image(os.path.join(TESTSET, 'gt', f'{s}.png')) for s in stems]]
    rows = [[img if img.dtype == np.uint8 else to_uint8(img) for img in line] for line in rows]
    write_image(path, picture_grid(rows, row_labels=['blurry', 'predicted mask', 'output', 'sharp'], min_tile=96))
    return True


def machine():
    import torch
    env = environment('cpu', torch.get_num_threads())
    return (f'{env["cpu_model"]}, {env["cpu_count"]} logical cores, torch {env["torch"]} '
            f'({env["torch_threads"]} threads), Python {env["python"]}, {env["platform"]}')


def degradation_text():
    """What the demo's degradation is, read from the SMFD demo option (the validation and test sets use it)."""
    from smfd_data.degradation import PAPER_SIZES, DegradationConfig

    val = read_option(OPTIONS['smfd'])['datasets']['val']
    cfg = DegradationConfig.from_dict(val.get('degradation'))
    size = face_size()
    if val.get('degrade_at', 'output') == 'source':
        order = 'blurred at the stored resolution, then resized (the paper\'s order, §3.4)'
    else:
        ratio = (max(cfg.gaussian_sizes + cfg.motion_sizes) / size) / (max(PAPER_SIZES) / 1024)
        order = (f'blurred at the network\'s face size {size}² after the resize (degrade_at: output); the paper '
                 f'blurs CelebA-HQ\'s 1024² images with sides {list(PAPER_SIZES)} and resizes to 256² afterwards, '
                 f'so relative to the face the largest kernel here is {ratio:.1f}× the paper\'s')
    return (f'Degradation: §3.4.1\'s pipeline ({cfg.num_layers} layers of {cfg.sequences}) with Gaussian kernel sides '
            f'{cfg.gaussian_sizes}, motion kernel sides {cfg.motion_sizes}, down-scale {cfg.scale_range}, noise η '
            f'{cfg.noise_range} (0–255), {order}.')


def budget_lines():
    lines = ['| network | iterations | batch | lr | schedule |', '|---|---|---|---|---|']
    for key, label in (('mask', 'MaskGenerator'), ('smfd', 'SMFD-UNet (GT masks)'), ('nomask', 'SMFD-UNet, no mask')):
        opt = read_option(OPTIONS[key])
        train = opt['train']
        sched = train.get('scheduler') or {}
        schedule = {'CosineAnnealingRestartLR': f'cosine to {sched.get("eta_min", 0):g}'}.get(sched.get('type'),
                                                                                        sched.get('type', 'constant'))
        if train.get('warmup_iter', -1) > 0:
            schedule = f'linear warm-up over {train["warmup_iter"]} iterations, then {schedule}'
        lines.append(f'| {label} | {train["total_iter"]} | {opt["datasets"]["train"]["batch_size_per_gpu"]} | '
                     f'{train["optim_g"]["lr"]:g} | {schedule} |')
    return lines


def claims(result):
    """The demo's three claims, checked on the numbers of this run."""
    rows = {r['method']: r for r in result['rows']}

    def psnr(name):
        value = rows.get(name, {}).get('psnr')
        return value if isinstance(value, (int, float)) else None

    blurry, nomask, cascade, gt = (psnr(n) for n in ('input', 'smfd_nomask', CASCADE, 'smfd_gt_masks'))
    checks = []
    for text, a, b, margin in (('SMFD-UNet with ground-truth masks gains ≥ 2 dB over the blurry input', gt, blurry, 2),
                               ('the cascade (generated masks) beats the no-mask model', cascade, nomask, None),
                               ('the no-mask model beats the blurry input', nomask, blurry, None)):
        if a is None or b is None:
            checks.append(f'- {text}: not measured (a row failed)')
        else:
            holds = a - b >= margin if margin else a > b
            checks.append(f'- {text}: {"yes" if holds else "**no**"} ({a:.2f} vs {b:.2f} dB, {a - b:+.2f})')
    return checks


def report_run(args, stages):
    with open(os.path.join(benchmark_dir(), 'benchmark.json')) as f:
        result = json.load(f)
    pictured = report_picture(result, os.path.join(RESULTS, 'report.png'))
    run = stages.get('run', {})
    skipped = 0.0 if run.get('reused') else sum(s.get('previous_seconds') or 0.0 for s in stages.values()
                                               if isinstance(s, dict) and s.get('status') == 'skipped')
    total = run.get('wall_seconds', 0.0) + skipped
    stage_lines = ['| stage | status | wall time (s) |', '|---|---|---|']
    for name in STAGES[:-1]:
        s = stages.get(name, {})
        status = s.get('status', '—')
        seconds = s.get('seconds')
        if status == 'skipped' and s.get('previous_seconds') is not None:
            status, seconds = 'skipped (outputs existed; time of the run that made them)', s['previous_seconds']
        elif s.get('concurrent'):
            status = 'ran (concurrently with the other trainings)'
        stage_lines.append(f'| {name} | {status} | {_number(seconds, "{:.1f}")} |')
    if stages.get('trainings_wall_seconds'):
        stage_lines.append(f'| (the trainings together) | | {stages["trainings_wall_seconds"]:.1f} |')
    load = (f' Load average (1 min) {run["load_start"]:.1f} at the start, {run["load_end"]:.1f} at the end, on '
            f'{run["cpu_count"]} logical cores (a load above the core count means other jobs shared them and the '
            'times are longer than on an idle machine).' if 'load_start' in run else '')
    notes = [f'- {r["method"]}: {r["error"]}' for r in result['rows'] if 'error' in r]
    text = '\n'.join([
        '# SMFD demo report', '',
        'Procedural synthetic faces (`smfd_data/synthetic_faces.py`), trained for minutes on a CPU through BasicSR\'s '
        'own training entry; the whole pipeline (data → training → cascade → benchmark) end to end.', '',
        f'Machine: {machine()}.',
        f'Wall time of the whole pipeline: {total:.0f} s' + (
            ' (the run that made these outputs; this invocation only wrote the report again)' if run.get('reused') else
            ' (stages skipped count with the time of the run that made them)' if skipped else '') + '.' + load,
        '', degradation_text(), '',
        f'## Results on the demo test set ({result["num_images"]} faces, {TESTSET})', '', report_table(result), '',
        'mask Dice: the MaskGenerator\'s prediction vs the ground-truth 5-group mask (channel-wise mean, '
        '§3.4.6.4). Full table (MSE, NIQE, LPIPS, FID, region metrics, GMACs): '
        '[benchmark.md](benchmark/benchmark.md); faces across methods: [grid.png](benchmark/grid.png).', '',
        *(['Failed rows:', *notes, ''] if notes else []),
        '![blurry / predicted mask / output / sharp](report.png)' if pictured else
        '(no report.png: the cascade row failed, see above)', '',
        'Rows of report.png: blurry input, mask predicted by the MaskGenerator, output of the cascade (generated '
        'masks), sharp ground truth.', '',
        '## What this run shows, and what it does not', '', *claims(result), '',
        'It shows that the pipeline works end to end and that, on these synthetic faces, the semantic mask helps: '
        'the no-mask model has the same network minus the mask branch, the same data and the same number of '
        'iterations. It does not show how SMFD does on real faces, nor the paper\'s numbers (CelebAMask-HQ, 256², '
        'full widths, hundreds of epochs: Table 4.2). The synthetic images are painted from their label maps, so '
        'a ground-truth mask tells the network more about these faces (every colour edge) than a real face\'s '
        'mask would; the cascade row, whose masks are predicted from the blurry input, is the fairer one.', '',
        '## Training budget', '', *budget_lines(), '',
        '## Stages', '', *stage_lines, '',
        'Re-run `make demo` to skip finished stages; `python scripts/run_demo.py --force` redoes everything.', ''])
    atomic_write_text(os.path.join(RESULTS, 'report.md'), text)


# ----------------------------------------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--force', nargs='*', choices=STAGES, metavar='STAGE',
                   help='redo these stages (no names: all) even when their outputs exist')
    p.add_argument('--num-faces', type=int, default=1500, help='synthetic faces to generate (default 1500: 960 '
                   'train, 240 validation, 300 test)')
    p.add_argument('--test-faces', type=int, default=100, help='faces of the test split in the demo test set '
                   '(default 100)')
    p.add_argument('--workers', type=int, default=2, help='processes for data generation / preparation')
    p.add_argument('--jobs', type=int, default=min(len(TRAININGS), os.cpu_count() or 1),
                   help='trainings run at the same time, cpu_count // jobs threads each (default: one per core, at '
                   'most 3; on 2 cores SMFD-UNet has one core, the mask generator then the no-mask model the other)')
    p.add_argument('--device', default='auto', help='device of the benchmark stage')
    p.add_argument('--options-dir', default=os.path.join('options', 'demo'),
                   help='folder of the four demo option files (default: options/demo of the current directory)')
    p.add_argument('--workdir', default='.', help='where datasets/, experiments/, results/ go (default: the '
                   'current directory; the option files use paths relative to it)')
    p.add_argument('--download-metric-weights', action='store_true',
                   help='let LPIPS/FID download their weights (default: use them only when already cached)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    OPTIONS.update({key: os.path.abspath(os.path.join(args.options_dir, name)) for key, name in OPTION_FILES.items()})
    os.makedirs(args.workdir, exist_ok=True)
    os.chdir(args.workdir)  # datasets/demo, experiments/, results/demo are relative to it (as in the option files)
    missing = [p for k, p in OPTIONS.items() if k != 'test' and not os.path.isfile(p)]
    if missing:
        print(f'run_demo: missing option files: {missing}', file=sys.stderr)
        return 2
    forced = set(STAGES) if args.force is not None and len(args.force) == 0 else set(args.force or ())
    state_path = os.path.join(RESULTS, 'stages.json')
    previous = {}
    if os.path.isfile(state_path):
        with open(state_path) as f:
            previous = json.load(f)
    stages = {}
    table = {
        'synth': (synth_done, synth_run), 'prepare': (prepare_done, prepare_run),
        'testset': (testset_done, testset_run),
        'train_mask': train_stage('mask'), 'train_smfd': train_stage('smfd'), 'train_nomask': train_stage('nomask'),
        'basicsr_test': (basicsr_test_done, basicsr_test_run), 'benchmark': (benchmark_done, benchmark_run),
    }
    started = time.time()
    load_start = os.getloadavg()[0]

    def needs_run(name):
        upstream = [d for d in DEPENDS.get(name, ()) if stages.get(d, {}).get('status') == 'ran']
        fresh = name in forced or bool(upstream)
        if not fresh and table[name][0](args):
            prev = previous.get(name, {})
            stages[name] = {'status': 'skipped', 'seconds': 0.0,
                            'previous_seconds': prev.get('seconds', prev.get('previous_seconds'))}
            log(f'{name}: outputs exist, skipped')
            return None
        log(f'{name}: to run' + (f' (after {", ".join(upstream)})' if upstream else ''))
        return fresh

    for name in STAGES[:-1]:
        if name in TRAININGS[1:]:
            continue  # run with the first training
        if name == TRAININGS[0]:
            fresh = {n: needs_run(n) for n in TRAININGS}
            todo = [n for n in TRAININGS if fresh[n] is not None]
            t0 = time.time()
            stages.update(run_trainings(todo, table, args, fresh))
            if todo:
                stages['trainings_wall_seconds'] = time.time() - t0
            atomic_write_json({**previous, **stages}, state_path)
            if any(stages[n]['status'] == 'failed' for n in todo):
                return 1
            continue
        fresh = needs_run(name)
        if fresh is None:
            continue
        t0 = time.time()
        try:
            table[name][1](args, fresh)
        except StageFailed as err:
            print(f'run_demo: stage {name} failed: {err}', file=sys.stderr)
            stages[name] = {'status': 'failed', 'seconds': time.time() - t0}
            atomic_write_json({**previous, **stages}, state_path)
            return 1
        stages[name] = {'status': 'ran', 'seconds': time.time() - t0}
        log(f'{name}: done in {stages[name]["seconds"]:.1f} s')
        atomic_write_json({**previous, **stages}, state_path)
    stages['run'] = {'wall_seconds': time.time() - started, 'load_start': load_start,
                     'load_end': os.getloadavg()[0], 'cpu_count': os.cpu_count(), 'jobs': args.jobs}
    if not any(isinstance(v, dict) and v.get('status') == 'ran' for v in stages.values()) and 'run' in previous:
        stages['run'] = dict(previous['run'], reused=True)  # only the report again: keep the times of the real run
        stages['trainings_wall_seconds'] = previous.get('trainings_wall_seconds')
    t0 = time.time()
    report_run(args, stages)
    stages['report'] = {'status': 'ran', 'seconds': time.time() - t0}
    atomic_write_json({**previous, **stages}, state_path)
    log(f'report: {os.path.join(RESULTS, "report.md")} and report.png (total {time.time() - started:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
