"""The NaN guard of both training models (smfd_models.model_base): it acts *before* optimizer.step.

A non-finite loss or gradient at iteration k skips that step: the weights, the optimizer state and the BN running
statistics after it equal those before it, training goes on, and the checkpoint written next is finite. N skips
in a row stop training with a clear message; an optimizer step that makes the weights explode stops it at once,
and no checkpoint is ever written with non-finite or exploded weights.
"""
import pytest
import torch

from smfd_models.model_base import weights_problem
from tests.helpers import tiny_batch, tiny_training_model

MODELS = ['SMFDModel', 'SMFDMaskGeneratorModel']


def state(model):
    """Parameters, buffers and Adam moments of net_g, copied."""
    net = model.get_bare_model(model.net_g)
    snap = {f'w.{k}': v.detach().clone() for k, v in net.state_dict().items()}
    for i, (p, s) in enumerate(model.optimizer_g.state.items()):
        for k, v in s.items():
            snap[f'opt.{i}.{k}'] = v.detach().clone() if torch.is_tensor(v) else v
    return snap


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def all_finite(d):
    return all(bool(torch.isfinite(v).all()) for v in d.values() if torch.is_tensor(v) and v.is_floating_point())


def step(model, it, data=None):
    model.feed_data(data or tiny_batch())
    model.optimize_parameters(it)


@pytest.mark.parametrize('model_type', MODELS)
def test_nan_gradient_at_step_k_is_skipped_and_the_checkpoint_is_finite(tmp_path, model_type):
    model = tiny_training_model(tmp_path, model_type)
    step(model, 1)
    step(model, 2)
    before = state(model)
    name, weight = next(model.net_g.named_parameters())
    handle = weight.register_hook(lambda g: g * float('nan'))  # finite loss, NaN gradient at iteration 3
    step(model, 3)
    handle.remove()
    after = state(model)
    assert_same(before, after)
    assert all_finite(after) and model.skipped_steps == 1
    step(model, 4)  # training goes on: this step changes the weights, finitely
    assert not torch.equal(weight, before[f'w.{name}']) and bool(torch.isfinite(weight).all())
    assert model._consecutive_skips == 0
    model.save(0, 4)
    saved = torch.load(tmp_path / 'models' / 'net_g_4.pth', weights_only=True)['params']
    assert all_finite(saved) and torch.equal(saved[name], weight.detach())


@pytest.mark.parametrize('model_type', MODELS)
def test_nan_input_loss_is_skipped_with_bn_statistics_restored(tmp_path, model_type, caplog):
    model = tiny_training_model(tmp_path, model_type)
    step(model, 1)
    before = state(model)
    data = tiny_batch()
    data['lq'][0, 0, 3, 3] = float('nan')  # a bad sample: NaN forward, NaN loss, NaN BN running statistics
    step(model, 7, data)
    assert_same(before, state(model))
    assert 'Non-finite loss at iteration 7' in caplog.text and 'step skipped, weights unchanged' in caplog.text


def test_bn_statistics_are_restored_after_a_buffer_was_replaced(tmp_path):
    model = tiny_training_model(tmp_path)
    step(model, 1)  # the guard's buffer copies exist from here on
    name, bn = next((n, m) for n, m in model.net_g.named_modules()
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    bn.running_mean = bn.running_mean.clone()  # a new tensor object, as net.to(device) makes
    before = state(model)
    data = tiny_batch()
    data['lq'][0, 0, 3, 3] = float('nan')
    step(model, 2, data)
    assert model.skipped_steps == 1
    assert_same(before, state(model))  # the tensor the net uses now was restored, not the replaced one
    step(model, 3)
    assert not torch.equal(bn.running_mean, before[f'w.{name}.running_mean'])  # and the next step updates it


def test_weights_problem_finds_the_largest_weight_nan_and_inf_in_any_tensor():
    tensors = [torch.tensor([0.5, -3.0]), torch.full((2, 2), -2.0, dtype=torch.bfloat16), torch.tensor([7, 99]),
               torch.zeros(0)]  # integer and empty tensors are not weights
    assert weights_problem(tensors, 3.0) == '' and weights_problem(tensors) == '' and weights_problem([]) == ''
    assert weights_problem(tensors, 2.5) == 'exploded (largest |weight| 3 > train.nan_guard.max_abs_weight 2.5)'
    for bad in (float('nan'), float('-inf')):
        broken = [t.clone() for t in tensors]
        broken[1][1, 0] = bad
        assert weights_problem(broken, 1e4) == 'non-finite (NaN/inf)'
        assert weights_problem(broken) == 'non-finite (NaN/inf)'


def test_consecutive_skips_stop_training_with_a_clear_message(tmp_path):
    model = tiny_training_model(tmp_path, train={'nan_guard': {'max_consecutive_skips': 3}})
    step(model, 1)
    before = state(model)
    inf_loss = lambda output: iter([('l_pix', output.mean() * float('inf'))])  # noqa: E731
    model.loss_terms = inf_loss
    step(model, 2)
    step(model, 3)
    with pytest.raises(RuntimeError, match=r'Non-finite loss or gradient in 3 consecutive iterations \(the last 4: '
                                           r'l_pix=inf\).*max_consecutive_skips'):
        step(model, 4)
    assert_same(before, state(model))


def test_exploding_step_stops_and_is_never_saved(tmp_path):
    model = tiny_training_model(tmp_path, train={'optim_g': {'type': 'SGD', 'lr': 1e9}})
    model.save(0, 1)  # a good checkpoint first
    good = (tmp_path / 'models' / 'net_g_1.pth').read_bytes()
    with pytest.raises(RuntimeError, match=r'iteration 2 left the weights exploded \(largest \|weight\| .* > '
                                           r'train.nan_guard.max_abs_weight 10000\)'):
        step(model, 2)
    with pytest.raises(RuntimeError, match=r'Not saving .*net_g_2.pth: the weights \(params\) are exploded'):
        model.save(0, 2)
    assert not (tmp_path / 'models' / 'net_g_2.pth').exists()
    assert (tmp_path / 'models' / 'net_g_1.pth').read_bytes() == good
    with torch.no_grad():
        next(model.net_g.parameters()).fill_(float('nan'))
    with pytest.raises(RuntimeError, match=r'the weights \(params\) are non-finite'):
        model.save(0, 3)


@pytest.mark.parametrize('section, message', [
    ({'max_consecutive_skips': 0}, r'train.nan_guard.max_consecutive_skips: 0 is not an integer >= 1'),
    ({'max_abs_weight': 'big'}, r"train.nan_guard.max_abs_weight: 'big' is not a number > 0 \(or null\)"),
    ({'max_skips': 2}, r"train.nan_guard: unknown key\(s\) \['max_skips'\]"),
])
def test_nan_guard_option_errors(tmp_path, section, message):
    with pytest.raises(ValueError, match=message):
        tiny_training_model(tmp_path, train={'nan_guard': section})


def test_nan_guard_options_read_yaml_strings(tmp_path):
    model = tiny_training_model(tmp_path, train={'nan_guard': {'max_abs_weight': '1e6', 'max_consecutive_skips': 2}})
    assert model.nan_guard == {'max_abs_weight': 1e6, 'max_consecutive_skips': 2}
    model = tiny_training_model(tmp_path, train={'nan_guard': {'max_abs_weight': None}})
    assert model.nan_guard['max_abs_weight'] is None
