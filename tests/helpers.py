"""Small shared helpers for the test-suite (subprocesses, tiny option files)."""
import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tiny SMFDUNet / MaskGenerator arguments: every block of the default layout, a few hundred parameters.
TINY_UNET = dict(encoder_widths=(4, 8, 8, 8), bottleneck_width=8, decoder_widths=(8, 8, 8, 4), final_width=4,
                 head_channels=4, growth=2, growth_ratio=None)
TINY_MASK = dict(encoder_widths=(4, 8, 8, 8), decoder_widths=(8, 8, 4), final_width=4, head_channels=4, growth=2,
                 growth_ratio=None)


def run_python(args, cwd=None, env=None, timeout=600, check=True):
    """Run ``python ARGS`` in a clean interpreter of this environment; return the CompletedProcess."""
    full_env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='default')
    full_env.update(env or {})
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'python {" ".join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n'
                             f'{result.stderr[-5000:]}')
    return result


def write_yaml(path, data):
    with open(path, 'w') as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return str(path)
