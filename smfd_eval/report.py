"""The benchmark's reports: Markdown and CSV tables, the JSON record and the picture grid (faces × methods)."""
import csv
import io
import os

import numpy as np

from smfd_data.atomic_io import atomic_write_json, atomic_write_text
from smfd_eval.methods import NOT_APPLICABLE
from smfd_models.visualize import picture_grid

COLUMNS = [  # (key, header, format, better)
    ('psnr', 'PSNR', '{:.2f}', 'higher'),
    ('ssim', 'SSIM', '{:.4f}', 'higher'),
    ('mse', 'MSE', '{:.2f}', 'lower'),
    ('niqe', 'NIQE', '{:.4f}', 'lower'),
    ('lpips', 'LPIPS', '{:.4f}', 'lower'),
    ('fid', 'FID', '{:.2f}', 'lower'),
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
PER_IMAGE = ('psnr', 'ssim', 'mse', 'niqe', 'lpips', 'psnr_face', 'ssim_face', 'psnr_components', 'ssim_components',
             'dice', 'jaccard')




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
    return markdown
