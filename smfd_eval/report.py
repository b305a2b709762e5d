"""The benchmark's reports: Markdown and CSV tables, the JSON record, the picture grid (faces × methods) and the
quality-vs-speed plot."""
import csv
import io
import math
import os

import numpy as np

from smfd_data.atomic_io import atomic_write_bytes, atomic_write_json, atomic_write_text
from smfd_eval.methods import NOT_APPLICABLE
from smfd_models.visualize import picture_grid

COLUMNS = [  # (key, header, format, better)
    ('psnr', 'PSNR', '{:.2f}', 'higher'),
    ('ssim', 'SSIM', '{:.4f}', 'higher'),
    ('mse', 'MSE', '{:.2f}', 'lower'),
    ('niqe', 'NIQE', '{:.4f}', 'lower'),
    ('lpips', 'LPIPS', '{:.4f}', 'lower'),
    ('fid', 'FID', '{:.2f}', 'lower'),
    ('identity', 'Identity', '{:.4f}', 'higher'),
    ('psnr_face', 'PSNR face', '{:.2f}', 'higher'),
    ('ssim_face', 'SSIM face', '{:.4f}', 'higher'),
    ('psnr_components', 'PSNR comp.', '{:.2f}', 'higher'),
    ('ssim_components', 'SSIM comp.', '{:.4f}', 'higher'),
    ('dice', 'Mask Dice', '{:.4f}', 'higher'),
    ('jaccard', 'Mask Jaccard', '{:.4f}', 'higher'),
    ('params', 'Params', '{:,d}', 'lower'),
    ('gmacs', 'GMACs', '{:.3f}', 'lower'),
    ('ms_per_face', 'ms/face', '{:.1f}', 'lower'),
]
PER_IMAGE = ('psnr', 'ssim', 'mse', 'niqe', 'lpips', 'identity', 'psnr_face', 'ssim_face', 'psnr_components',
             'ssim_components', 'dice', 'jaccard')




def is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def benchmark_grid(samples, columns):
    """Rows = faces, columns = each method's output, then the GT (``columns``: [(name, outputs)])."""
    columns = list(columns) + [('GT', [s['gt'] for s in samples])]
    rows = [[images[i] for _, images in columns] for i in range(len(samples))]
    return picture_grid(rows, column_labels=[name for name, _ in columns], min_tile=96)


def cell(value, notes=None):
    """Markdown/CSV text of a table value; 'unavailable (reason)' cells get a numbered note when ``notes``."""
    if value is None:
        return 'nan'
    if isinstance(value, str):
        if notes is not None and value.startswith('unavailable ('):
            if value not in notes:
                notes.append(value)
            return f'unavailable [{notes.index(value) + 1}]'
        return value
    return None


def format_markdown(result):
    notes = []
    header = '| Method | ' + ' | '.join(f'{h} {"↑" if b == "higher" else "↓"}' for _, h, _, b in COLUMNS) + ' |'
    lines = [header, '|' + '---|' * (len(COLUMNS) + 1)]
    for row in result['rows']:
        cells = []
        for key, _, fmt, _ in COLUMNS:
            value = row.get(key, NOT_APPLICABLE)
            text = cell(value, notes)
            cells.append(text if text is not None else fmt.format(int(value) if fmt == '{:,d}' else value))
        lines.append(f'| {row["method"]} | ' + ' | '.join(cells) + ' |')
    out = [f'Benchmark on {result["testset"]} ({result["num_images"]} images, device {result["device"]})', '',
           *lines, '']
    for i, note in enumerate(notes, 1):
        out.append(f'[{i}] {note}')
    out += ['', 'Rows: ' + '; '.join(f'{r["method"]}: {r["description"]}' for r in result['rows']), '',
            f'Conventions: {result["conventions"]}. "—" = not applicable.', '']
    return '\n'.join(out)


def format_csv(result):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(['method'] + [key for key, *_ in COLUMNS])
    for row in result['rows']:
        values = []
        for key, *_ in COLUMNS:
            value = row.get(key, NOT_APPLICABLE)
            values.append(value if isinstance(value, str) else repr(float(value)) if value is not None else 'nan')
        writer.writerow([row['method']] + values)
    return buffer.getvalue()


def write_reports(result, out_dir):
    markdown = format_markdown(result)
    atomic_write_text(os.path.join(out_dir, 'benchmark.md'), markdown)
    atomic_write_text(os.path.join(out_dir, 'benchmark.csv'), format_csv(result))
    atomic_write_json(result, os.path.join(out_dir, 'benchmark.json'))
    quality_speed_plot(result, os.path.join(out_dir, 'plot.png'))
    return markdown


PLOT_METRICS = (('psnr', 'PSNR (dB)'), ('ssim', 'SSIM'))


def plot_data(result):
    """What the quality-vs-speed plot shows, per metric: ``points`` (method, ms/face, value) of timed methods,
    ``lines`` (method, value) of rows without a time (the blurry input, folders of other tools' outputs) and
    ``left_out`` (method, why) for values that cannot be drawn (unavailable, infinite PSNR of a perfect copy)."""
    data = {}
    for key, _ in PLOT_METRICS:
        points, lines, left_out = [], [], []
        for row in result['rows']:
            value, ms = row.get(key), row.get('ms_per_face')
            if not is_number(value) or not math.isfinite(value):
                left_out.append((row['method'], str(value)))
            elif is_number(ms) and ms > 0:
                points.append((row['method'], float(ms), float(value)))
            else:
                lines.append((row['method'], float(value)))
        data[key] = {'points': points, 'lines': lines, 'left_out': left_out}
    return data


def quality_speed_plot(result, path):
    """PSNR and SSIM against ms/face, one labelled point per timed method, untimed rows (the blurry input first)
    as horizontal lines; a log time axis when times span more than 20×. Written atomically; returns plot_data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = plot_data(result)
    fig = Figure(figsize=(11, 4.2), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)  # the Agg canvas without pyplot: no global backend state, no display needed
    for ax, (key, label) in zip(fig.subplots(1, len(PLOT_METRICS)), PLOT_METRICS):
        series = data[key]
        times = [ms for _, ms, _ in series['points']]
        for name, ms, value in series['points']:
            ax.plot(ms, value, 'o', color='tab:blue')
            ax.annotate(name, (ms, value), textcoords='offset points', xytext=(5, 4), fontsize=8)
        for name, value in series['lines']:
            style = dict(color='gray', linestyle='-') if name == 'input' else dict(color='tab:orange', linestyle=':')
            ax.axhline(value, linewidth=1, **style)
            ax.annotate(name, (0.01, value), xycoords=('axes fraction', 'data'), xytext=(0, 3),
                        textcoords='offset points', fontsize=8, color=style['color'])
        if times and max(times) > 20 * min(times):
            ax.set_xscale('log')
        if not times:
            ax.set_xlim(0, 1)
            ax.text(0.5, 0.5, 'no timed method', transform=ax.transAxes, ha='center', color='gray')
        values = [v for *_, v in series['points']] + [v for _, v in series['lines']]
        if values:
            low, high = min(values), max(values)
            pad = 0.08 * (high - low) or 0.05 * max(abs(high), 1e-3)
            ax.set_ylim(low - pad, high + 2 * pad)
        ax.set_xlabel('ms per face (forward only, batched)')
        ax.set_ylabel(f'{label} ↑')
        ax.grid(True, alpha=0.3)
        if series['left_out']:
            names = ', '.join(name for name, _ in series['left_out'])
            ax.set_title(f'not drawn (no finite value): {names}', fontsize=8, loc='right')
    fig.suptitle(f'Quality vs speed: {os.path.basename(result["testset"])} ({result["num_images"]} images, '
                 f'device {result["device"]})', fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    atomic_write_bytes(path, buffer.getvalue())
    return data
