"""§3.4.6.3 protocol bookkeeping: plateau LR, early stopping, save-best, resume of the counters."""
import math

import pytest

from smfd_models.protocol import TrainingProtocol, metric_mode, parse_protocol_options

VAL = {'metrics': {'ssim': {'type': 'calculate_ssim'}, 'psnr': {'type': 'calculate_psnr'},
                   'mse': {'type': 'smfd_mse', 'better': 'lower'}, 'dice': {'type': 'smfd_dice'},
                   'oddball': {'type': 'x'}}}


def make(protocol_opt, default_metric='ssim'):
    return TrainingProtocol(parse_protocol_options(protocol_opt, VAL, default_metric))


def run(protocol, values, lr=1e-3, metric='ssim'):
    """Feed values one validation at a time; return (lr after each step, stop flags, save-best flags)."""
    lrs, stops, bests = [], [], []
    current = [[lr]]
    for i, value in enumerate(values):
        decision = protocol.step({metric: value}, (i + 1) * 100, current)
        if decision['new_lrs'] is not None:
            current = decision['new_lrs']
        lrs.append(current[0][0])
        stops.append(decision['stop'])
        bests.append(decision['save_best'])
    return lrs, stops, bests


def test_plateau_hand_computed():
    p = make({'plateau': {'factor': 0.2, 'patience': 2, 'min_lr': 1e-5, 'min_delta': 0}})
    values = [0.5, 0.5, 0.4, 0.6, 0.6, 0.6, 0.59, 0.59, 0.1, 0.1]
    lrs, stops, _ = run(p, values)
    # 0.5 best | 0.5 wait1 | 0.4 wait2 -> 1e-3*0.2 | 0.6 best | wait1 | wait2 -> 4e-5 | wait1 | wait2 -> max(8e-6,
    # 1e-5) = 1e-5 (floor) | wait1 | wait2 but already at min_lr: unchanged
    expected = [1e-3, 1e-3, 2e-4, 2e-4, 2e-4, 4e-5, 4e-5, 1e-5, 1e-5, 1e-5]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert not any(stops)


def test_plateau_paper_defaults_reach_min_lr():
    # §3.4.6.3: constant for 5 validations -> lr * 0.2, down to 1e-9
    p = make({'plateau': {}})
    assert p.config['plateau'] == {'metric': 'ssim', 'mode': 'max', 'factor': 0.2, 'patience': 5, 'min_lr': 1e-9,
                                   'min_delta': 1e-4, 'cooldown': 0}
    lrs, _, _ = run(p, [0.7] * 61)
    # first validation sets the best; then every 5th constant validation reduces
    assert lrs[:6] == pytest.approx([1e-3] * 5 + [2e-4])
    reductions = [lrs[5 + 5 * k] for k in range(10)]
    expected = [max(1e-3 * 0.2**(k + 1), 1e-9) for k in range(10)]  # 2e-4, 4e-5, ..., 2.56e-9, 1e-9, 1e-9
    assert reductions == pytest.approx(expected, rel=1e-9)
    assert lrs[-1] == 1e-9


def test_plateau_min_delta_and_cooldown():
    # +5e-5 is not an improvement with min_delta 1e-4 (Keras semantics)
    p = make({'plateau': {'patience': 2}})
    lrs, _, _ = run(p, [0.5, 0.50005, 0.50009])
    assert lrs == pytest.approx([1e-3, 1e-3, 2e-4])
    # cooldown 1: the validation after a reduction is not counted
    p = make({'plateau': {'patience': 1, 'cooldown': 1, 'min_delta': 0}})
    lrs, _, _ = run(p, [0.5, 0.4, 0.4, 0.4, 0.4])
    assert lrs == pytest.approx([1e-3, 2e-4, 2e-4, 4e-5, 4e-5])


def test_early_stopping_hand_computed():
    p = make({'early_stop': {'patience': 3}})
    values = [0.5, 0.6, 0.6, 0.55, 0.61, 0.6, 0.6, 0.6]
    lrs, stops, _ = run(p, values)
    # best 0.5, 0.6, wait1, wait2, best 0.61, wait1, wait2, wait3 -> stop at the 8th validation
    assert stops == [False] * 7 + [True]
    assert lrs == [1e-3] * 8  # early stopping alone never touches the lr
    assert p.early_stop.best == 0.61 and p.early_stop.best_iter == 500


def test_lower_better_metric_and_save_best():
    p = make({'early_stop': {'metric': 'mse', 'patience': 2}, 'save_best': {'metric': 'mse'}})
    _, stops, bests = run(p, [10.0, 9.0, 9.5, 9.0, 8.0], metric='mse')
    assert bests == [True, True, False, False, True]  # save-best needs a strict improvement
    assert stops == [False, False, False, True, False]


def test_resume_continues_counters():
    opt = {'plateau': {'patience': 3, 'min_delta': 0}, 'early_stop': {'patience': 5}, 'save_best': {}}
    values = [0.5, 0.4, 0.4, 0.4, 0.4, 0.45, 0.3, 0.2]
    ref_lrs, ref_stops, ref_bests = run(make(opt), values)

    first = make(opt)
    lrs1, stops1, bests1 = run(first, values[:3])
    state = first.state_dict()
    resumed = make(opt)
    resumed.load_state_dict(state)
    lrs2, stops2, bests2 = run(resumed, values[3:], lr=lrs1[-1])
    assert lrs1 + lrs2 == pytest.approx(ref_lrs)
    assert stops1 + stops2 == ref_stops
    assert bests1 + bests2 == ref_bests
    assert ref_stops[-1] and ref_lrs[3] == pytest.approx(2e-4)


def test_state_is_plain_python():
    p = make({'plateau': {}, 'save_best': {}})
    state = p.state_dict()
    assert state['plateau']['best'] == -math.inf and state['save_best']['wait'] == 0

    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        return x is None or isinstance(x, (bool, int, float, str))

    assert plain(state)


def test_monitors_first_dataset_by_default():
    p = make({'save_best': {}})
    assert p.monitors('val_a') and not p.monitors('val_b') and p.monitors('val_a')
    p = make({'save_best': {}, 'dataset': 'val_b'})
    assert not p.monitors('val_a') and p.monitors('val_b')


def test_metric_mode():
    assert metric_mode('ssim') == 'max' and metric_mode('psnr_face') == 'max' and metric_mode('dice') == 'max'
    assert metric_mode('lpips') == 'min' and metric_mode('niqe') == 'min'
    assert metric_mode('anything', better='lower') == 'min'
    assert metric_mode('lpips', mode='max') == 'max'
    with pytest.raises(ValueError, match='better: higher\\|lower'):
        metric_mode('oddball')


def test_option_errors():
    assert parse_protocol_options(None, VAL, 'ssim') == {}
    assert not make({}).enabled
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['plateu'\].*'early_stop'"):
        parse_protocol_options({'plateu': {}}, VAL, 'ssim')
    with pytest.raises(ValueError, match=r"plateau: unknown key\(s\) \['paitence'\].*'patience'"):
        parse_protocol_options({'plateau': {'paitence': 3}}, VAL, 'ssim')
    with pytest.raises(ValueError, match=r"'lpips' is not computed during validation; val.metrics has: \['dice'"):
        parse_protocol_options({'save_best': {'metric': 'lpips'}}, VAL, 'ssim')
    with pytest.raises(ValueError, match='factor must be in'):
        parse_protocol_options({'plateau': {'factor': 2}}, VAL, 'ssim')
    with pytest.raises(ValueError, match='patience must be an integer'):
        parse_protocol_options({'early_stop': {'patience': 0}}, VAL, 'ssim')
    # the model's default metric: Dice for the mask generator
    cfg = parse_protocol_options({'early_stop': True}, VAL, 'dice')
    assert cfg['early_stop']['metric'] == 'dice' and cfg['early_stop']['mode'] == 'max'
