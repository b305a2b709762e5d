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


# In-process training models (SMFDModel / SMFDMaskGeneratorModel) on a tiny net, for step-level tests.
TINY_STEP_NETS = {
    'SMFDModel': {'type': 'SMFDUNet', 'encoder_widths': [4, 8, 8, 8], 'bottleneck_width': 8,
                  'decoder_widths': [8, 8, 8, 8], 'final_width': 8, 'dense_layers': 1, 'head_channels': 8},
    'SMFDMaskGeneratorModel': {'type': 'MaskGenerator', 'in_channels': 3, 'num_classes': 5,
                               'encoder_widths': [4, 8, 8, 8], 'decoder_widths': [8, 8, 8], 'final_width': 8,
                               'dense_layers': 1, 'head_channels': 8},
}


def tiny_training_model(tmp_path, model_type='SMFDModel', seed=0, train=None, **extra):
    """A built training model (num_gpu 0) with Adam lr 1e-3 and `train` merged into its train section."""
    import torch
    from basicsr.models import build_model

    from smfd_basicsr import register
    register()
    opt = {'name': 'unit', 'model_type': model_type, 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
           'world_size': 1, 'network_g': dict(TINY_STEP_NETS[model_type]),
           'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states'),
                    'visualization': str(tmp_path / 'vis')},
           'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 10, **(train or {})}}
    opt.update(extra)
    torch.manual_seed(seed)
    return build_model(opt)


def tiny_batch(b=2, size=32, seed=0):
    """{'lq', 'gt', 'mask'} of random images and integer labels (5 classes)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(b, 3, size, size, generator=gen), 'gt': torch.rand(b, 3, size, size, generator=gen),
            'mask': torch.randint(0, 5, (b, size, size), generator=gen)}
