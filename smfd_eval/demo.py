"""`make demo`: the whole SMFD pipeline end to end on procedural synthetic faces, on a CPU, in minutes.

Stages (each skipped when its outputs exist, unless --force; a stage that runs makes the later ones run again):

1. synth      scripts/generate_synthetic_faces.py → datasets/demo/raw (CelebAMask-HQ layout, --num-faces faces)
2. prepare    scripts/prepare_celebamask_hq.py → datasets/demo/prepared (face size = the demo options' gt_size;
              80:20 trainval/test split, 5 folds)
3. train_mask python -m basicsr.train -opt options/demo/train_mask_generator_demo.yml   (BasicSR's own entry)
4. train_smfd python -m basicsr.train -opt options/demo/train_smfd_demo.yml
5. train_nomask python -m basicsr.train -opt options/demo/train_smfd_nomask_demo.yml  (Table 4.3's first row)
6. testset    scripts/degrade_testset.py → datasets/demo/testset (the test split, seeded degradation)
7. basicsr_test python -m basicsr.test -opt options/demo/test_smfd_demo.yml            (BasicSR's test entry)
8. benchmark  scripts/benchmark.py's evaluation → results/demo/benchmark (input, Richardson–Lucy with the true
              kernels, the cascade with generated masks, SMFD-UNet with GT masks, the no-mask model)
9. report     results/demo/report.md + results/demo/report.png

The numbers are a smoke test of the pipeline on synthetic faces with a tiny training budget, not the paper's
(CelebAMask-HQ, hundreds of epochs). Measured wall time: see docs/tools.md and the report's stage table.
"""
import argparse
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
from smfd_data.atomic_io import atomic_write_json, atomic_write_text
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

STAGES = ('synth', 'prepare', 'train_mask', 'train_smfd', 'train_nomask', 'testset', 'basicsr_test', 'benchmark',
          'report')
DEPENDS = {  # a stage runs again when one of these ran in the same invocation
    'prepare': ('synth', ),
    'train_mask': ('prepare', ),
    'train_smfd': ('prepare', 'train_mask'),  # the SMFD option may use the generator (mask_source: generator)
    'train_nomask': ('prepare', ),
    'testset': ('prepare', ),
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


def log(message):
    print(f'[demo] {message}', flush=True)


class StageFailed(RuntimeError):
    pass


def run_command(command, log_path, env=None):
    """Run a subprocess with its output in ``log_path``; on failure raise with the log's tail."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, 'w') as f:
        f.write('$ ' + ' '.join(command) + '\n')
        f.flush()
        result = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
    if result.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-25:])
        raise StageFailed(f'{" ".join(command)} failed (exit {result.returncode}); last lines of {log_path}:\n{tail}')


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
    size = 2 * face_size()
    run_logged('generating synthetic faces', lambda: write_celebamask_tree(
        RAW, args.num_faces, 0, img_size=size, mask_size=size, workers=args.workers, progress=False),
               os.path.join(RESULTS, 'logs', 'synth.log'))


def prepare_done(args):
    return os.path.isfile(os.path.join(PREPARED, 'meta_info', 'fold5_val.txt'))


def prepare_run(args, fresh=True):
    run_logged('preparing the faces', lambda: celebamask_hq.main(
        ['-i', RAW, '-o', PREPARED, '--size', str(face_size()), '--workers', str(args.workers)]),
               os.path.join(RESULTS, 'logs', 'prepare.log'))


def train_stage(key):

    def done(args):
        return os.path.isfile(latest_checkpoint(key))

    def run(args, fresh):
        command = [sys.executable, '-m', 'basicsr.train', '-opt', OPTIONS[key]]
        if not fresh:
            command.append('--auto_resume')  # continue an interrupted run instead of starting over
        run_command(command, os.path.join(RESULTS, 'logs', f'train_{key}.log'))
        if not done(args):
            raise StageFailed(f'training finished but {latest_checkpoint(key)} is missing')

    return done, run


def testset_option_path():
    return os.path.join(RESULTS, 'testset_option.yml')


def testset_done(args):
    return os.path.isfile(os.path.join(TESTSET, 'params.json'))


def testset_run(args, fresh=True):
    """The test split through the SMFD demo option's validation settings (size, grouping, scaled degradation)."""
    import yaml

    from smfd_data.degraded_dataset import write_degraded_set
    datasets = read_option(OPTIONS['smfd'])['datasets']
    test = dict(datasets.get('val') or datasets['train'])
    for key in ('augment', 'use_shuffle', 'batch_size_per_gpu', 'num_worker_per_gpu', 'dataset_enlarge_ratio',
                'prefetch_mode', 'degrade_on_device', 'mask_root_pred'):
        test.pop(key, None)
    test.update(name='demo_test', meta_info_file=os.path.join(PREPARED, 'meta_info', 'test.txt'), seed=2024)
    atomic_write_text(testset_option_path(), yaml.safe_dump({'name': 'demo_testset', 'datasets': {'test': test}},
                                                            sort_keys=False))
    run_logged('writing the degraded test set', lambda: write_degraded_set(testset_option_path(), TESTSET),
               os.path.join(RESULTS, 'logs', 'testset.log'))


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


def report_run(args, stages):
    with open(os.path.join(benchmark_dir(), 'benchmark.json')) as f:
        result = json.load(f)
    pictured = report_picture(result, os.path.join(RESULTS, 'report.png'))
    total = sum((s['seconds'] if s.get('status') == 'ran' else s.get('previous_seconds')) or 0.0
                for s in stages.values())
    stage_lines = ['| stage | status | wall time (s) |', '|---|---|---|']
    for name in STAGES[:-1]:
        s = stages.get(name, {})
        status = s.get('status', '—')
        seconds = s.get('seconds')
        if status == 'skipped' and s.get('previous_seconds') is not None:
            status, seconds = 'skipped (outputs existed; time of the run that made them)', s['previous_seconds']
        stage_lines.append(f'| {name} | {status} | {_number(seconds, "{:.1f}")} |')
    notes = [f'- {r["method"]}: {r["error"]}' for r in result['rows'] if 'error' in r]
    text = '\n'.join([
        '# SMFD demo report', '',
        'Synthetic faces (procedural, `smfd_data/synthetic_faces.py`), tiny training budgets: a smoke test of the '
        'whole pipeline (data → BasicSR training → cascade → benchmark), **not** the paper\'s numbers '
        '(CelebAMask-HQ, Table 4.2).', '',
        f'Machine: {machine()}.', f'Wall time of the whole pipeline: {total:.0f} s (sum of the stages below).', '',
        f'## Results on the demo test set ({result["num_images"]} faces, {TESTSET})', '', report_table(result), '',
        'mask Dice: the MaskGenerator\'s prediction vs the ground-truth 5-group mask (channel-wise mean, '
        '§3.4.6.4). Full table (MSE, NIQE, LPIPS, FID, region metrics, GMACs): '
        '[benchmark.md](benchmark/benchmark.md); faces across methods: [grid.png](benchmark/grid.png).', '',
        *(['Failed rows:', *notes, ''] if notes else []),
        '![blurry / predicted mask / output / sharp](report.png)' if pictured else
        '(no report.png: the cascade row failed, see above)', '',
        'Rows of report.png: blurry input, mask predicted by the MaskGenerator, output of the cascade (generated '
        'masks), sharp ground truth.', '', '## Stages', '', *stage_lines, '',
        'Re-run `make demo` to skip finished stages; `python scripts/run_demo.py --force` redoes everything.', ''])
    atomic_write_text(os.path.join(RESULTS, 'report.md'), text)


# ----------------------------------------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--force', nargs='*', choices=STAGES, metavar='STAGE',
                   help='redo these stages (no names: all) even when their outputs exist')
    p.add_argument('--num-faces', type=int, default=300, help='synthetic faces to generate (default 300)')
    p.add_argument('--workers', type=int, default=2, help='processes for data generation / preparation')
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
        'train_mask': train_stage('mask'), 'train_smfd': train_stage('smfd'), 'train_nomask': train_stage('nomask'),
        'testset': (testset_done, testset_run), 'basicsr_test': (basicsr_test_done, basicsr_test_run),
        'benchmark': (benchmark_done, benchmark_run),
    }
    started = time.time()
    for name in STAGES[:-1]:
        done, run = table[name]
        upstream = [d for d in DEPENDS.get(name, ()) if stages.get(d, {}).get('status') == 'ran']
        fresh = name in forced or bool(upstream)
        if not fresh and done(args):
            prev = previous.get(name, {})
            stages[name] = {'status': 'skipped', 'seconds': 0.0,
                            'previous_seconds': prev.get('seconds', prev.get('previous_seconds'))}
            log(f'{name}: outputs exist, skipped')
            continue
        log(f'{name}: running' + (f' (after {", ".join(upstream)})' if upstream else '') + ' ...')
        t0 = time.time()
        try:
            run(args, fresh)
        except StageFailed as err:
            print(f'run_demo: stage {name} failed: {err}', file=sys.stderr)
            stages[name] = {'status': 'failed', 'seconds': time.time() - t0}
            atomic_write_json({**previous, **stages}, state_path)
            return 1
        stages[name] = {'status': 'ran', 'seconds': time.time() - t0}
        log(f'{name}: done in {stages[name]["seconds"]:.1f} s')
        atomic_write_json({**previous, **stages}, state_path)
    t0 = time.time()
    report_run(args, stages)
    stages['report'] = {'status': 'ran', 'seconds': time.time() - t0}
    atomic_write_json({**previous, **stages}, state_path)
    log(f'report: {os.path.join(RESULTS, "report.md")} and report.png (total {time.time() - started:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
