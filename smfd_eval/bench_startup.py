"""Start-up cost of the SMFD import hook: `python -c pass` with the hook vs. without it.

The hook's `.pth` line runs in every interpreter of the environment, so it must stay cheap. We compare the
normal start-up with one where the package `smfd_basicsr` is shadowed (via PYTHONPATH) by an empty package of the
same name (with an `autoload.install()` that does nothing): same `.pth` processing, none of our work. Also reports
the hook package's own import time (`-X importtime`).
Prints a table and writes JSON (`--json F`).

    .venv/bin/python scripts/bench_startup.py --json bench_startup.json
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from smfd_data.atomic_io import atomic_write_json


def time_once(env):
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', 'pass'], env=env, check=True)
    return (time.perf_counter() - start) * 1e3


def time_interleaved(env_a, env_b, runs):
    """Alternate A and B so that drift in machine load hits both alike."""
    a, b = [], []
    for _ in range(runs):
        a.append(time_once(env_a))
        b.append(time_once(env_b))
    return a, b


def self_import_ms(env, runs):
    values = []
    for _ in range(runs):
        err = subprocess.run([sys.executable, '-X', 'importtime', '-c', 'pass'], env=env, capture_output=True,
                             text=True, check=True).stderr
        for line in err.splitlines():
            fields = line.split('|')
            if len(fields) == 3 and fields[2].strip() == 'smfd_basicsr':
                values.append(int(fields[1]) / 1e3)  # cumulative µs → ms
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=40)
    parser.add_argument('--json', default=None)
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.pop('SMFD_NO_AUTOLOAD', None)
    with tempfile.TemporaryDirectory() as shadow, tempfile.TemporaryDirectory() as empty:
        os.makedirs(os.path.join(shadow, 'smfd_basicsr'))
        open(os.path.join(shadow, 'smfd_basicsr', '__init__.py'), 'w').close()
        with open(os.path.join(shadow, 'smfd_basicsr', 'autoload.py'), 'w') as f:
            f.write('def install():\n    pass\n')
        hook_env = dict(env, PYTHONPATH=empty)  # same sys.path length in both arms
        shadow_env = dict(env, PYTHONPATH=shadow)
        time_interleaved(hook_env, shadow_env, 3)  # warm the page cache
        with_hook, without_hook = time_interleaved(hook_env, shadow_env, args.runs)
    module_ms = self_import_ms(env, 10)
    rows = {
        'python -c pass, hook installed (ms)': statistics.median(with_hook),
        'python -c pass, hook shadowed by an empty module (ms)': statistics.median(without_hook),
        'added start-up time (ms)': statistics.median(with_hook) - statistics.median(without_hook),
        'smfd_basicsr import, cumulative -X importtime (ms)': statistics.median(module_ms) if module_ms else None,
    }
    width = max(len(k) for k in rows)
    print(f'machine: {platform.processor() or platform.machine()}, python {platform.python_version()}')
    for key, value in rows.items():
        print(f'{key:<{width}}  {value:8.2f}' if value is not None else f'{key:<{width}}  n/a')
    if args.json:
        result = {'rows': rows, 'raw_ms': {'with_hook': with_hook, 'without_hook': without_hook,
                                           'module_import': module_ms},
                  'target_added_ms': 10.0, 'target_met': rows['added start-up time (ms)'] <= 10.0}
        atomic_write_json(result, args.json)


if __name__ == '__main__':
    main()
