"""Every patch of BasicSR in smfd_basicsr/patches.py, one test each (end-to-end runs through BasicSR's stock entries
are in tests/test_basicsr_entries.py: outputs under the cwd, SIGKILL + auto-resume on CPU, 2-process CPU DDP)."""
import collections
import os
import sys
import sysconfig
import types

import pytest
import torch

from smfd_basicsr import register
from tests.helpers import REPO

register()

from smfd_basicsr import patches  # noqa: E402


def test_apply_is_idempotent_and_reaches_every_target():
    import basicsr.test
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import options
    before = (options.parse_options, BaseModel.model_to_device)
    patches.apply()  # a second time: nothing is wrapped twice
    assert (options.parse_options, BaseModel.model_to_device) == before
    assert getattr(options.parse_options, patches._PATCHED)
    assert basicsr.train.parse_options is options.parse_options is basicsr.test.parse_options
    assert options.init_dist is patches.init_dist


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


def test_resume_loader_replaced_in_both_copies_of_the_pipeline(monkeypatch):
    """`python -m basicsr.train` runs basicsr/train.py as __main__, a second copy of the module: both copies get
    the CPU-safe load_resume_state when the pipeline calls parse_options."""
    import basicsr.train
    fake_main = types.ModuleType('__main__')
    fake_main.__file__ = basicsr.train.__file__
    fake_main.load_resume_state = lambda opt: 'stock'
    monkeypatch.setitem(sys.modules, '__main__', fake_main)
    monkeypatch.setattr(basicsr.train, 'load_resume_state', lambda opt: 'stock')
    assert patches._train_pipeline_modules() == [basicsr.train, fake_main]
    patches._make_pipelines_cpu_safe()
    assert basicsr.train.load_resume_state is patches.load_resume_state
    assert fake_main.load_resume_state is patches.load_resume_state
    other = types.ModuleType('__main__')
    other.__file__ = os.path.join(REPO, 'some_script.py')
    other.load_resume_state = 'untouched'
    monkeypatch.setitem(sys.modules, '__main__', other)
    assert patches._train_pipeline_modules() == [basicsr.train]


def test_training_state_loads_on_cpu_without_running_code(tmp_path):
    good = tmp_path / '4.state'
    torch.save({'iter': 4, 'optimizers': [{'state': {0: {'exp_avg': torch.ones(2)}}}],
                'schedulers': [{'milestones': collections.Counter({10: 1})}]}, good)
    state = patches.load_training_state(str(good))
    assert state['iter'] == 4 and state['optimizers'][0]['state'][0]['exp_avg'].device.type == 'cpu'

    class Payload:
        def __reduce__(self):
            return (os.system, ('echo pwned',))

    bad = tmp_path / '5.state'
    torch.save({'iter': 5, 'x': Payload()}, bad)
    with pytest.raises(RuntimeError, match=r'cannot load training state .*5\.state'):
        patches.load_training_state(str(bad))


def test_init_dist_falls_back_to_gloo_without_cuda(monkeypatch):
    import torch.distributed as dist
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group', lambda backend, **kw: calls.append(backend))
    patches.init_dist('pytorch', backend='nccl')
    assert calls == ['gloo']


def test_model_to_device_wraps_cpu_models_in_ddp_without_device_ids(monkeypatch):
    from torch.nn.parallel import DistributedDataParallel
    built = []
    monkeypatch.setattr(DistributedDataParallel, '__init__',
                        lambda self, module, **kw: built.append((module, kw)) or torch.nn.Module.__init__(self))
    model = types.SimpleNamespace(opt={'dist': True, 'num_gpu': 0}, device=torch.device('cpu'))
    net = torch.nn.Linear(2, 2)
    from basicsr.models.base_model import BaseModel
    wrapped = BaseModel.model_to_device(model, net)
    assert isinstance(wrapped, DistributedDataParallel)
    assert built[0][0] is net and 'device_ids' not in built[0][1]
    model.opt['dist'] = False
    assert BaseModel.model_to_device(model, net) is net  # the stock path: no DDP without dist


def test_parse_options_checks_the_file_before_anything_is_built(tmp_path, monkeypatch):
    from basicsr.utils import options
    opt_file = tmp_path / 'bad.yml'
    opt_file.write_text('name: x\nnum_gpu: 0\ndatasets: {}\npath: {}\nmodel_type: SMFDModle\nnetwork_g: {type: SMFDUNet}\n')
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_file)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="option 'model_type': unknown model 'SMFDModle'"):
        options.parse_options(sysconfig.get_paths()['purelib'], is_train=True)
    assert not (tmp_path / 'experiments').exists()
