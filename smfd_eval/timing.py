"""Shared pieces of the speed benchmarks (smfd_eval.bench_inference, bench_data, bench_train) and MAC counting.

Every figure a benchmark reports is a ratio against a reference timed in the same process, on the same device,
with the same thread count: absolute milliseconds on a shared 2-core VM mean little, ratios taken seconds apart
mean more. Timings are wall-clock around each call, with `torch.cuda.synchronize()` before and after on CUDA;
every case keeps its raw list of seconds in the JSON next to its median.
"""
import argparse
import datetime
import os
import platform
import statistics
import time

import torch

from smfd_data.atomic_io import atomic_write_json

__all__ = [
    'add_common_arguments', 'setup_device', 'synchronize', 'time_calls', 'summarize', 'environment',
    'count_macs', 'measure_peaks', 'conv3x3_gflops', 'target', 'format_table', 'targets_table', 'write_json',
    'load_note', 'parse_int_list', 'rss_gb', 'TINY_UNET', 'TINY_MASK', 'OTHERS_CORES_LIMIT', 'parse_proc_stat',
    'parse_self_stat', 'LoadMonitor', 'start_report', 'finish_report'
]

# Tiny SMFD configurations for the test-suite's smoke runs (--tiny): every code path, none of the cost.
TINY_UNET = dict(encoder_widths=(4, 8, 8, 8), bottleneck_width=8, decoder_widths=(8, 8, 8, 4), final_width=4,
                 head_channels=4, growth=2, growth_ratio=None)
TINY_MASK = dict(encoder_widths=(4, 8, 8, 8), decoder_widths=(8, 8, 4), final_width=4, head_channels=4, growth=2,
                 growth_ratio=None)


# ------------------------------------------------------------------------------------------------ load record
# A timing is trusted only when the rest of the machine kept (almost) still: other processes' CPU time, from
# /proc/stat (all busy jiffies) minus /proc/self/stat (this process and its reaped children).
OTHERS_CORES_LIMIT = 0.25
RELIABILITY_RULE = (
    f'reliable = other processes used at most {OTHERS_CORES_LIMIT} core on average over the run AND in every sample '
    'window (consecutive samples merged to windows of >= 1 s); others = (total busy jiffies in /proc/stat − this '
    "process's utime+stime+cutime+cstime in /proc/self/stat) / CLK_TCK / window seconds")


def parse_proc_stat(text):
    """Busy jiffies of all CPUs from /proc/stat text: user+nice+system+irq+softirq+steal (not idle, iowait)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == 'cpu':
            values = [int(v) for v in fields[1:]]
            values += [0] * (8 - len(values))
            user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
            return user + nice + system + irq + softirq + steal  # guest time is already inside user
    raise ValueError('no aggregate "cpu" line in /proc/stat')


def parse_self_stat(text):
    """utime+stime+cutime+cstime (jiffies) from /proc/<pid>/stat text (the name field may contain spaces)."""
    fields = text[text.rindex(')') + 2:].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17
    return sum(int(v) for v in fields[11:15])


def _read_proc():
    with open('/proc/stat') as f:
        busy = parse_proc_stat(f.read())
    with open('/proc/self/stat') as f:
        own = parse_self_stat(f.read())
    return busy, own


class LoadMonitor:
    """Samples (label, seconds, total busy jiffies, own jiffies) and judges whether the run was quiet.

    `read()` returns (total busy jiffies, own jiffies) and `clock()` seconds: injectable for tests. Without
    /proc (not Linux), `available` is False and the run is reported with `reliable: null`.
    """

    min_window_s = 1.0

    def __init__(self, read=_read_proc, clock=time.monotonic, ticks_per_s=None, limit=OTHERS_CORES_LIMIT):
        self.read, self.clock, self.limit = read, clock, limit
        self.ticks = ticks_per_s or os.sysconf('SC_CLK_TCK')
        self.samples, self.available = [], True

    def sample(self, label):
        if not self.available:
            return
        try:
            busy, own = self.read()
        except (OSError, ValueError):
            self.available = False
            return
        self.samples.append({'label': label, 't': self.clock(), 'busy': busy, 'own': own})

    def idle_window(self, label, seconds=2.0):
        """Two samples `seconds` apart while this process sleeps: what the others use when we do nothing."""
        self.sample(f'{label} start')
        time.sleep(seconds)
        self.sample(f'{label} end')

    def _cores(self, a, b):
        dt = b['t'] - a['t']
        if dt <= 0:
            return None, None
        others = max(0, (b['busy'] - a['busy']) - (b['own'] - a['own'])) / self.ticks / dt
        return others, (b['own'] - a['own']) / self.ticks / dt

    def record(self):
        """{'rule', 'limit_cores', 'windows': [...], 'samples': [...], 'others_cores_mean', 'others_cores_max',
        'reliable'}."""
        bounds, start = [], self.samples[0] if self.samples else None
        for b in self.samples[1:]:
            if b['t'] - start['t'] >= self.min_window_s:  # jiffies are 10 ms: shorter windows are noise
                bounds.append((start, b))
                start = b
        if self.samples and start is not self.samples[-1]:  # a short tail joins the last window
            bounds[-1:] = [((bounds[-1][0] if bounds else self.samples[0]), self.samples[-1])]
        windows = []
        for a, b in bounds:
            others, own = self._cores(a, b)
            if others is not None:
                windows.append({'from': a['label'], 'to': b['label'], 'seconds': round(b['t'] - a['t'], 3),
                                'others_cores': round(others, 4), 'own_cores': round(own, 4)})
        t0 = self.samples[0]['t'] if self.samples else 0.0
        out = {'rule': RELIABILITY_RULE, 'limit_cores': self.limit, 'windows': windows,
               'samples': [{'label': x['label'], 't_s': round(x['t'] - t0, 3)} for x in self.samples],
               'others_cores_mean': None, 'others_cores_max': None, 'reliable': None}
        if not windows:
            return out
        mean, _ = self._cores(self.samples[0], self.samples[-1])
        worst = max(w['others_cores'] for w in windows)
        out.update(others_cores_mean=round(mean, 4), others_cores_max=worst,
                   reliable=bool(mean <= self.limit and worst <= self.limit))
        return out


def start_report(script, args, device, settings):
    """The report skeleton every benchmark writes, with its load monitor started ('before' idle window)."""
    monitor = LoadMonitor()
    monitor.idle_window('before', seconds=args.idle_s)
    report = {'script': script, 'environment': environment(device, args.threads), 'settings': settings}
    return report, monitor


def finish_report(report, monitor, args):
    """'after' idle window, the load record and `reliable` into the report, then the atomic JSON write."""
    monitor.idle_window('after', seconds=args.idle_s)
    report['load'] = monitor.record()
    report['reliable'] = report['load']['reliable']
    report['load_avg_end'] = load_note()
    write_json(args.json, report)
    load = report['load']
    print(f'\nLoad: other processes used {load["others_cores_mean"]} core on average, {load["others_cores_max"]} '
          f'at most in a window (limit {load["limit_cores"]}): reliable = {report["reliable"]}')
    return report


def add_common_arguments(parser):
    parser.add_argument('--json', required=True, help='write the results here (atomic write)')
    parser.add_argument('--threads', type=int, default=2, help='torch intra-op threads (and onnxruntime)')
    parser.add_argument('--device', default='auto', help='auto (cuda when available), cpu or cuda[:N]')
    parser.add_argument('--repeats', type=int, default=None, help='timed calls per case (default: 5, --quick 2)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed calls before each case (default 1)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes and few repeats: checks that every code path runs, numbers mean nothing')
    parser.add_argument('--idle-s', type=float, default=2.0,
                        help='seconds of the idle load windows before and after the run (load record)')
    return parser


def setup_device(args):
    """Apply --threads, resolve --device, fill repeats/warmup defaults; returns the torch.device."""
    if args.threads and args.threads > 0:
        torch.set_num_threads(args.threads)
    name = args.device
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'--device {args.device}: CUDA is not available on this machine')
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    if args.warmup is None:
        args.warmup = 1
    return device


def synchronize(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(fn, device, repeats, warmup=1):
    """Call `fn()` `warmup` times untimed, then `repeats` times; returns the list of seconds per call."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def summarize(times):
    """{'raw_s': [...], 'median_s', 'min_s', 'max_s'} of a list of seconds."""
    return {'raw_s': [round(t, 6) for t in times], 'median_s': statistics.median(times), 'min_s': min(times),
            'max_s': max(times)}


def _cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rss_gb():
    """Resident memory of this process in GiB (Linux /proc; None elsewhere)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    except (OSError, ValueError):
        return None


def load_note():
    """`uptime`-style load averages (1, 5, 15 min): another process on the machine skews every timing."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def environment(device, threads):
    """What the numbers depend on: CPU/GPU model, threads, library versions, date, load."""
    env = {
        'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'device': str(device),
        'cpu_model': _cpu_model(),
        'cpu_count': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'threads_requested': threads,
        'torch': torch.__version__,
        'python': platform.python_version(),
        'platform': platform.platform(),
        'load_avg_1_5_15': load_note(),
        'mkldnn_bf16_supported': bool(getattr(torch.backends.mkldnn, 'is_available', lambda: False)()),
    }
    if torch.device(device).type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
        env['cuda'] = torch.version.cuda
    try:
        import onnxruntime
        env['onnxruntime'] = onnxruntime.__version__
    except ImportError:
        env['onnxruntime'] = None
    return env


def count_macs(net, inputs):
    """Multiply-accumulates of one forward with fvcore's FlopCountAnalysis (which counts 1 per MAC).

    Counted: convolutions (incl. transposed), matmul/linear/einsum/bmm, batch/group/layer norm, adaptive
    average pooling, upsampling. Not counted: element-wise ops and reshuffles (add, mul, sigmoid, max-pooling,
    pixel-shuffle, ... listed in 'uncounted_ops'; ReLU, dropout, padding and slicing are skipped silently by
    fvcore). Returns {'gmacs', 'by_operator', 'uncounted_ops',
    'counter'} or {'error': text} when tracing fails.
    """
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError as err:
        return {'error': f'fvcore missing ({err})'}
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(net, inputs)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings('none')
            total = analysis.total()
            by_op = {k: round(v / 1e9, 4) for k, v in analysis.by_operator().items()}
            uncounted = dict(analysis.unsupported_ops())
    except Exception as err:  # tracing can fail on exotic forwards; report instead of aborting the benchmark
        return {'error': f'{type(err).__name__}: {err}'[:500]}
    return {'gmacs': total / 1e9, 'by_operator_gmacs': by_op, 'uncounted_ops': uncounted,
            'counter': 'fvcore FlopCountAnalysis (1 per multiply-accumulate)'}


def conv3x3_gflops(batch, channels, size):
    """FLOPs (2 per MAC) of one 3×3 same-padding convolution channels→channels on batch×size² inputs, in GFLOP."""
    return 2.0 * batch * channels * channels * 9 * size * size / 1e9


def measure_peaks(device, quick=False, repeats=5):
    """Measured ceilings on this device, fp32: matmul GFLOP/s and 3×3 conv GFLOP/s in NCHW vs channels_last.

    The conv (64→64 channels, 4×128², or 1×32² quick) is the shape that dominates SMFD's full-resolution
    levels, so its channels_last rate is the realistic ceiling for our networks.
    """
    n = 256 if quick else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    with torch.no_grad():
        mm = time_calls(lambda: torch.mm(a, b), device, repeats)
    peaks = {'matmul': {'shape': [n, n, n], 'gflops': 2.0 * n**3 / 1e9 / statistics.median(mm), **summarize(mm)}}
    batch, channels, size = (1, 32, 32) if quick else (4, 64, 128)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(device).eval()
    x = torch.randn(batch, channels, size, size, device=device)
    work = conv3x3_gflops(batch, channels, size)
    for name, fmt in (('conv3x3_nchw', torch.contiguous_format), ('conv3x3_channels_last', torch.channels_last)):
        conv = conv.to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt)
        with torch.no_grad():
            times = time_calls(lambda: conv(xi), device, repeats)
        peaks[name] = {'shape': [batch, channels, size, size], 'gflops': work / statistics.median(times),
                       **summarize(times)}
    return peaks


def target(name, value, threshold, comparison, measured_as):
    """One of the issue's targets: {'name', 'value', 'threshold', 'comparison', 'met', 'measured_as'}.

    `comparison` is '<', '<=', '>' or '>='; `value` None (not measured) gives met None.
    """
    ops = {'<': lambda a, b: a < b, '<=': lambda a, b: a <= b, '>': lambda a, b: a > b,
           '>=': lambda a, b: a >= b}
    met = None if value is None else bool(ops[comparison](value, threshold))
    return {'name': name, 'value': value, 'threshold': threshold, 'comparison': comparison, 'met': met,
            'measured_as': measured_as}


def _cell(value):
    if value is None:
        return '–'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e5:
            return f'{value:.3g}' if abs(value) < 10 else f'{value:.1f}'
        return f'{value:.3g}'
    return str(value)


def format_table(rows, columns, title=None):
    """A Markdown table of `rows` (dicts) with `columns` [(key, header), ...]; missing cells print as '–'."""
    lines = [f'### {title}', ''] if title else []
    lines.append('| ' + ' | '.join(header for _, header in columns) + ' |')
    lines.append('|' + '|'.join('---' for _ in columns) + '|')
    for row in rows:
        lines.append('| ' + ' | '.join(_cell(row.get(key)) for key, _ in columns) + ' |')
    return '\n'.join(lines)


def targets_table(targets):
    rows = [dict(t, met=('n/a' if t['met'] is None else ('met' if t['met'] else 'NOT met'))) for t in targets]
    return format_table(rows, [('name', 'target'), ('value', 'measured'), ('comparison', ''),
                               ('threshold', 'threshold'), ('met', 'result'), ('measured_as', 'how')],
                        title='Targets')


def write_json(path, obj):
    """Atomic JSON write (temporary file + os.replace), creating the folder."""
    atomic_write_json(obj, path)


def parse_int_list(text):
    try:
        values = [int(v) for v in str(text).split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated integers, got {text!r}') from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f'expected positive integers, got {text!r}')
    return values


def part_set(valid, noun='part'):
    """argparse type of a comma-separated set of names from ``valid``; an unknown one is a usage error that lists
    the valid names."""
    valid = tuple(valid)

    def parse(text):
        values = {v for v in text.split(',') if v}
        unknown = sorted(values - set(valid))
        if unknown:
            raise argparse.ArgumentTypeError(f'unknown {noun}(s) {unknown}; choose from {", ".join(valid)}')
        return values

    return parse


def add_part_arguments(parser, opt_in, skippable, noun='part', with_note=''):
    """The benchmark scripts' ``--with`` (opt-in ``noun``s, ``args.with_``) and ``--skip`` (``args.skip``): sets of
    names, '' by default."""
    parser.add_argument('--with', dest='with_', type=part_set(opt_in, noun), default='',
                        help=f'opt-in {noun}s: {",".join(opt_in)}{with_note}')
    parser.add_argument('--skip', type=part_set(skippable, noun), default='',
                        help=f'{noun}s to leave out: {", ".join(skippable)}')
