"""The startup hook: BasicSR sees SMFD after a plain `import basicsr`, and nothing else is disturbed."""
import os
import sysconfig

import pytest

from tests.helpers import REPO, run_python

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


def test_project_root_redirects_only_site_packages(tmp_path, monkeypatch):
    from smfd_basicsr.patches import _Options, project_root
    monkeypatch.chdir(tmp_path)
    assert project_root('/usr/lib/python3/dist-packages') == str(tmp_path)
    assert project_root(os.path.join(sysconfig.get_paths()['purelib'])) == str(tmp_path)
    assert project_root(REPO) == REPO
    opt = _Options()
    opt['root_path'] = sysconfig.get_paths()['purelib']
    assert opt['root_path'] == str(tmp_path)


def test_latest_training_state_ignores_foreign_files(tmp_path):
    from smfd_basicsr.patches import latest_training_state
    assert latest_training_state(tmp_path / 'missing') is None
    for name in ('10.state', '200.state', '30.state', '999.state.tmp', 'notes.txt'):
        (tmp_path / name).write_bytes(b'x')
    assert latest_training_state(tmp_path) == str(tmp_path / '200.state')


@pytest.mark.parametrize('key, value, expected', [
    ('network_g', {'type': 'SMFDUNett'}, "option 'network_g.type': unknown arch 'SMFDUNett'. Did you mean SMFDUNet"),
    ('mask_source', 'dataset', "option 'mask_source': 'dataset' is not valid. Valid: gt, generator, none"),
    ('model_type', 'SMFDModle', "option 'model_type': unknown model 'SMFDModle'. Did you mean SMFDModel"),
])
def test_option_check_names_key_and_valid_values(key, value, expected):
    from smfd_basicsr.options import OptionError, validate_options
    opt = {'model_type': 'SMFDModel', 'network_g': {'type': 'SMFDUNet'}, 'datasets': {}}
    opt[key] = value
    with pytest.raises(OptionError) as info:
        validate_options(opt, source='x.yml')
    assert str(info.value).startswith('x.yml: ') and expected in str(info.value)


def test_option_check_missing_dataset_path(tmp_path):
    from smfd_basicsr.options import OptionError, validate_options
    missing = str(tmp_path / 'nowhere')
    opt = {'model_type': 'SMFDModel', 'datasets': {'train': {'type': 'SMFDFaceDataset', 'dataroot_gt': missing}}}
    with pytest.raises(OptionError, match=f"option 'datasets.train.dataroot_gt': path '{missing}' does not exist"):
        validate_options(opt)
