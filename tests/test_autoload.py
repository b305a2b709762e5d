"""The startup hook: BasicSR sees SMFD after a plain `import basicsr`, and nothing else is disturbed."""
import os
import sysconfig

from tests.helpers import run_python

REGISTERED = {
    'ARCH_REGISTRY': ['SMFDUNet', 'MaskGenerator'],
    'DATASET_REGISTRY': ['SMFDFaceDataset', 'SMFDDegradedFolderDataset'],
    'MODEL_REGISTRY': ['SMFDModel', 'SMFDMaskGeneratorModel'],
    'LOSS_REGISTRY': ['SMFDDiceLoss', 'SMFDCrossEntropyLoss'],
    'METRIC_REGISTRY': ['smfd_mse', 'smfd_dice', 'smfd_jaccard', 'smfd_region_psnr', 'smfd_region_ssim', 'smfd_lpips'],
}
PRINT_REGISTERED = ('from basicsr.utils import registry as r; '
                    f'print(sorted(n for reg, names in {REGISTERED!r}.items() for n in names '
                    'if n in getattr(r, reg)))')
ALL_NAMES = sorted(n for names in REGISTERED.values() for n in names)


def test_pth_file_is_installed_in_site_packages():
    pth = os.path.join(sysconfig.get_paths()['purelib'], 'smfd_autoload.pth')
    assert os.path.isfile(pth), 'pip install did not put smfd_autoload.pth into site-packages'
    assert open(pth).read().strip() == 'import smfd_basicsr.autoload; smfd_basicsr.autoload.install()'


def test_plain_import_basicsr_registers_every_smfd_name(tmp_path):
    out = run_python(['-c', 'import torchvision, basicsr; print(torchvision.__version__); ' + PRINT_REGISTERED],
                     cwd=tmp_path).stdout.splitlines()
    major, minor = (int(v) for v in out[0].split('.')[:2])
    assert (major, minor) >= (0, 17), 'this test is about torchvision without functional_tensor'
    assert out[1] == str(ALL_NAMES)


def test_disable_env_var_leaves_basicsr_alone(tmp_path):
    # Without the hook, stock basicsr 1.4.2 cannot even be imported on this torchvision ...
    failed = run_python(['-c', 'import basicsr'], cwd=tmp_path, env={'SMFD_NO_AUTOLOAD': '1'}, check=False)
    assert failed.returncode != 0 and 'functional_tensor' in failed.stderr
    # ... and once prepared by hand, none of SMFD's names are registered.
    code = 'import smfd_basicsr; smfd_basicsr.prepare_basicsr(); import basicsr; ' + PRINT_REGISTERED
    out = run_python(['-c', code], cwd=tmp_path, env={'SMFD_NO_AUTOLOAD': '1'}).stdout.strip()
    assert out == '[]'


def test_interpreter_start_imports_neither_torch_nor_basicsr(tmp_path):
    code = ("import sys; print('smfd_basicsr.autoload' in sys.modules, 'torch' in sys.modules, "
            "'basicsr' in sys.modules)")
    assert run_python(['-c', code], cwd=tmp_path).stdout.split() == ['True', 'False', 'False']


def test_hook_fires_once_and_only_for_basicsr(tmp_path):
    code = ('import sys, json; from smfd_basicsr import autoload; '
            'before = sum(isinstance(f, autoload._BasicSRFinder) for f in sys.meta_path); '
            'import json.decoder; mid = sum(isinstance(f, autoload._BasicSRFinder) for f in sys.meta_path); '
            'import basicsr; after = sum(isinstance(f, autoload._BasicSRFinder) for f in sys.meta_path); '
            'print(before, mid, after)')
    assert run_python(['-c', code], cwd=tmp_path).stdout.split() == ['1', '1', '0']


def test_own_failure_is_a_warning_not_a_crash(tmp_path):
    broken = tmp_path / 'shadow' / 'smfd_arch'
    broken.mkdir(parents=True)
    (broken / '__init__.py').write_text("raise ImportError('simulated breakage')\n")
    result = run_python(['-c', 'import basicsr; print("basicsr imported")'], cwd=tmp_path,
                        env={'PYTHONPATH': str(tmp_path / 'shadow')})
    assert 'basicsr imported' in result.stdout
    assert 'smfd_autoload: registering SMFD failed' in result.stderr and 'simulated breakage' in result.stderr


def test_tensorboard_module_has_exactly_one_distribution(tmp_path):
    code = ('import importlib.metadata as m, tensorboard; from torch.utils.tensorboard import SummaryWriter; '
            "print(sorted(set(m.packages_distributions()['tensorboard'])))")
    assert run_python(['-c', code], cwd=tmp_path).stdout.strip() == "['tb-nightly']"
