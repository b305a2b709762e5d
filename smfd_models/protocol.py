"""The paper's training protocol (§3.4.6.3) on top of BasicSR's loop: plateau LR, early stopping, save-best.

§3.4.6.3: "the learning rate was first set to 0.001 [...] when the validation Dice coefficient (Mask Generator)
and validation SSIM (SMFD-UNet) were constant for five consecutive epochs, the learning rate was reduced to 20 %
of its current value [...] until a minimum of 1e-9. An early stopping condition [...] halted training when the
validation metric did not improve for ten consecutive epochs. [...] model checkpointing [saved] the weights when
the validation metric increased."

BasicSR 1.4.2 has none of the three. `TrainingProtocol` implements them with Keras semantics (the thesis used
Keras): the counters count *validations* (set `val.val_freq` to one epoch of iterations to match the paper), a
plateau is `patience` validations in a row without an improvement larger than `min_delta`, and the counter
restarts after each reduction. YAML (`train.protocol`, every part off unless present):

    protocol:
      dataset: ~            # which val dataset (its `name`) is monitored; default: the first one validated
      plateau: {metric: ssim, factor: 0.2, patience: 5, min_lr: 1.0e-9, min_delta: 1.0e-4, cooldown: 0}
      early_stop: {metric: ssim, patience: 10, min_delta: 0}
      save_best: {metric: ssim}    # -> models/net_g_best.pth (+ params_ema) and models/net_g_best.json

`metric` is a key of `val.metrics` (default: the model's, SSIM for SMFD, Dice for the mask generator); `mode`
(`max`/`min`) comes from that entry's `better` or from its name (psnr/ssim/dice/jaccard are higher-better).

Early stopping: BasicSR's loop has no stop hook, so after the validation that triggers it the model saves a
final checkpoint (`net_g_<iter>.pth`, `<iter>.state`, `net_g_latest.pth`), logs the reason, closes the
tensorboard writer and raises `SMFDEarlyStop`, a `SystemExit` with code 0: the process ends cleanly with exit
status 0 and wrappers can catch the subclass. Counters live in the training state (`state['protocol']`), so
`--auto_resume` continues them. The I/O (saving, lr changes, stopping) is done by the models through
`smfd_models.model_base.SMFDTrainingMixin`; this module is pure bookkeeping.
"""
import math

__all__ = ['PROTOCOL_DEFAULTS', 'SMFDEarlyStop', 'TrainingProtocol', 'metric_mode', 'parse_protocol_options']

# defaults per section; a section is active only when present in the YAML
PROTOCOL_DEFAULTS = {
    'plateau': dict(metric=None, mode=None, factor=0.2, patience=5, min_lr=1e-9, min_delta=1e-4, cooldown=0),
    'early_stop': dict(metric=None, mode=None, patience=10, min_delta=0.0),
    'save_best': dict(metric=None, mode=None),
}
_TOP_LEVEL_KEYS = ('dataset', )
_HIGHER_BETTER = ('psnr', 'ssim', 'dice', 'jaccard', 'iou', 'acc')
_LOWER_BETTER = ('mse', 'mae', 'lpips', 'niqe', 'fid', 'loss')


class SMFDEarlyStop(SystemExit):
    """Raised after an early stop has been saved and logged; exit status 0 (a clean end of training)."""

    def __init__(self, message):
        super().__init__(0)
        self.message = message


def metric_mode(name, better=None, mode=None):
    """'max' or 'min' for a validation metric: explicit `mode`, else its `better`, else from its name."""
    if mode is not None:
        if mode not in ('max', 'min'):
            raise ValueError(f'train.protocol: mode must be "max" or "min", got {mode!r}')
        return mode
    if better is not None:
        if better not in ('higher', 'lower'):
            raise ValueError(f'val.metrics.{name}.better must be "higher" or "lower", got {better!r}')
        return 'max' if better == 'higher' else 'min'
    lname = name.lower()
    higher = any(token in lname for token in _HIGHER_BETTER)
    lower = any(token in lname for token in _LOWER_BETTER)
    if higher != lower:
        return 'max' if higher else 'min'
    raise ValueError(f'train.protocol: cannot tell whether metric {name!r} is higher- or lower-better; '
                     'set `better: higher|lower` in its val.metrics entry or `mode: max|min` in the protocol.')


def parse_protocol_options(protocol_opt, val_opt, default_metric):
    """Validate `train.protocol` against `val.metrics`; returns {section: filled config} (+ 'dataset')."""
    if not protocol_opt:
        return {}
    if not isinstance(protocol_opt, dict):
        raise ValueError(f'train.protocol must be a mapping, got {type(protocol_opt).__name__}')
    valid = sorted(PROTOCOL_DEFAULTS) + list(_TOP_LEVEL_KEYS)
    unknown = sorted(set(protocol_opt) - set(valid))
    if unknown:
        raise ValueError(f'train.protocol: unknown key(s) {unknown}; valid keys: {valid}')
    metrics_opt = (val_opt or {}).get('metrics') or {}
    config = {'dataset': protocol_opt.get('dataset')}
    for section, defaults in PROTOCOL_DEFAULTS.items():
        sec_opt = protocol_opt.get(section)
        if sec_opt is None or sec_opt is False:
            continue
        if sec_opt is True:
            sec_opt = {}
        if not isinstance(sec_opt, dict):
            raise ValueError(f'train.protocol.{section} must be a mapping, true or false; got {sec_opt!r}')
        unknown = sorted(set(sec_opt) - set(defaults))
        if unknown:
            raise ValueError(f'train.protocol.{section}: unknown key(s) {unknown}; valid keys: {sorted(defaults)}')
        cfg = {**defaults, **sec_opt}
        cfg['metric'] = cfg['metric'] or default_metric
        if cfg['metric'] not in metrics_opt:
            raise ValueError(f'train.protocol.{section}.metric {cfg["metric"]!r} is not computed during '
                             f'validation; val.metrics has: {sorted(metrics_opt)}')
        cfg['mode'] = metric_mode(cfg['metric'], metrics_opt[cfg['metric']].get('better'), cfg['mode'])
        for key in ('patience', 'cooldown'):
            if key in cfg and (int(cfg[key]) != cfg[key] or cfg[key] < (1 if key == 'patience' else 0)):
                raise ValueError(f'train.protocol.{section}.{key} must be an integer >= '
                                 f'{1 if key == "patience" else 0}, got {cfg[key]!r}')
        if section == 'plateau' and not 0 < float(cfg['factor']) < 1:
            raise ValueError(f'train.protocol.plateau.factor must be in (0, 1), got {cfg["factor"]!r}')
        for key in ('factor', 'min_lr', 'min_delta'):
            if key in cfg:
                cfg[key] = float(cfg[key])
        config[section] = cfg
    return config


class _Monitor:
    """Best value of one metric and how many validations in a row did not beat it by more than `min_delta`."""

    def __init__(self, metric, mode, min_delta=0.0):
        self.metric, self.mode, self.min_delta = metric, mode, min_delta
        self.best = -math.inf if mode == 'max' else math.inf
        self.best_iter = -1
        self.wait = 0

    def improved(self, value):
        if self.mode == 'max':
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value, current_iter):
        """Returns True when `value` is an improvement (and records it), else counts one more bad validation."""
        if self.improved(value):
            self.best, self.best_iter, self.wait = value, current_iter, 0
            return True
        self.wait += 1
        return False

    def state_dict(self):
        return {'best': float(self.best), 'best_iter': int(self.best_iter), 'wait': int(self.wait)}

    def load_state_dict(self, state):
        self.best, self.best_iter, self.wait = float(state['best']), int(state['best_iter']), int(state['wait'])


class TrainingProtocol:
    """Plateau LR decay, early stopping and save-best decisions from a sequence of validation results (§3.4.6.3).

    Pure bookkeeping (no I/O): `step()` returns what to do, the model does it. Args: `config` from
    `parse_protocol_options`.
    """

    def __init__(self, config):
        self.config = config or {}
        self.dataset = self.config.get('dataset')
        self.plateau = self._monitor('plateau')
        self.early_stop = self._monitor('early_stop')
        self.save_best = self._monitor('save_best', min_delta=0.0)
        self.cooldown_counter = 0
        self.last_iter = None
        self.stopped = False

    def _monitor(self, section, min_delta=None):
        cfg = self.config.get(section)
        if cfg is None:
            return None
        return _Monitor(cfg['metric'], cfg['mode'], cfg.get('min_delta', 0.0) if min_delta is None else min_delta)

    @property
    def enabled(self):
        return any(m is not None for m in (self.plateau, self.early_stop, self.save_best))

    def monitors(self, dataset_name):
        """Whether the validation results of `dataset_name` drive the protocol (first dataset seen by default)."""
        if self.dataset is None:
            self.dataset = dataset_name
        return dataset_name == self.dataset

    def step(self, metrics, current_iter, lrs):
        """Feed one validation.

        Args:
            metrics (dict): metric name -> value of this validation.
            current_iter (int): training iteration of the validation.
            lrs (list[list[float]]): current lr of every param group of every optimizer.

        Returns:
            dict: `new_lrs` (same nesting as `lrs`, or None), `save_best` (bool), `stop` (bool),
            `messages` (list[str] to log).
        """
        decision = {'new_lrs': None, 'save_best': False, 'stop': False, 'messages': []}
        self.last_iter = current_iter
        if self.save_best is not None:
            decision['save_best'] = self.save_best.update(float(metrics[self.save_best.metric]), current_iter)
        if self.plateau is not None:
            self._step_plateau(float(metrics[self.plateau.metric]), current_iter, lrs, decision)
        if self.early_stop is not None:
            mon = self.early_stop
            if not mon.update(float(metrics[mon.metric]), current_iter) and mon.wait >= self.config['early_stop'][
                    'patience']:
                self.stopped = decision['stop'] = True
                decision['messages'].append(
                    f'Early stopping: {mon.metric} has not improved for {mon.wait} validations '
                    f'(best {mon.best:.6g} @ iter {mon.best_iter}).')
        return decision

    def _step_plateau(self, value, current_iter, lrs, decision):
        """Keras ReduceLROnPlateau: after `patience` validations without improvement, lr <- max(lr*factor, min_lr)."""
        cfg, mon = self.config['plateau'], self.plateau
        in_cooldown = self.cooldown_counter > 0
        if in_cooldown:
            self.cooldown_counter -= 1
            mon.wait = 0
        if mon.improved(value):
            mon.best, mon.best_iter, mon.wait = value, current_iter, 0
            return
        if in_cooldown:
            return
        mon.wait += 1
        if mon.wait < cfg['patience']:
            return
        new_lrs = [[max(lr * cfg['factor'], cfg['min_lr']) if lr > cfg['min_lr'] else lr for lr in group]
                   for group in lrs]
        if new_lrs != [list(group) for group in lrs]:
            decision['new_lrs'] = new_lrs
            old = ', '.join(f'{lr:.3e}' for group in lrs for lr in group)
            new = ', '.join(f'{lr:.3e}' for group in new_lrs for lr in group)
            decision['messages'].append(f'Plateau: {mon.metric} has not improved for {mon.wait} validations '
                                        f'(best {mon.best:.6g} @ iter {mon.best_iter}); lr {old} -> {new}.')
        self.cooldown_counter = cfg['cooldown']
        mon.wait = 0

    def state_dict(self):
        state = {'dataset': self.dataset, 'cooldown_counter': self.cooldown_counter, 'last_iter': self.last_iter,
                 'stopped': self.stopped}
        for name in ('plateau', 'early_stop', 'save_best'):
            mon = getattr(self, name)
            state[name] = None if mon is None else mon.state_dict()
        return state

    def load_state_dict(self, state):
        """Restore counters saved by `state_dict`; a section absent from the saved run starts fresh."""
        self.dataset = self.config.get('dataset') or state.get('dataset')
        self.cooldown_counter = int(state.get('cooldown_counter', 0))
        self.last_iter = state.get('last_iter')
        self.stopped = bool(state.get('stopped', False))
        for name in ('plateau', 'early_stop', 'save_best'):
            mon = getattr(self, name)
            if mon is not None and state.get(name) is not None:
                mon.load_state_dict(state[name])

