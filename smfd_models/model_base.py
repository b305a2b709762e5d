"""What both SMFD models change in BasicSR's BaseModel: safe checkpoints, CPU DDP, NaN guard, validation loop
with pictures, and the §3.4.6.3 protocol (`smfd_models.protocol`) wired into BasicSR's loop.
"""
from collections import OrderedDict
from os import path as osp

import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from tqdm import tqdm

from smfd_data.atomic_io import atomic_write_json
from smfd_data.image_io import imwrite_atomic, write_image
from smfd_models.checkpoint import cpu_state_dict, load_state_dict_safely, save_with_retry
from smfd_models.fast_paths import (
    autocast_for,
    compile_module,
    fast_path_options,
    grad_scaler_for,
    set_channels_last,
    to_channels_last,
)
from smfd_models.protocol import SMFDEarlyStop, TrainingProtocol, parse_protocol_options

__all__ = ['SUPPORTED_OPTIMIZERS', 'NAN_GUARD_DEFAULTS', 'SMFDTrainingMixin', 'parse_nan_guard_options',
           'weights_problem']

SUPPORTED_OPTIMIZERS = ('Adam', 'AdamW', 'SGD')
# max_abs_weight: trained restoration nets keep |w| far below 1e3; an lr blow-up (Adam moves each weight by ~lr per
# step) lands far above. null: check finiteness only.
NAN_GUARD_DEFAULTS = {'max_consecutive_skips': 10, 'max_abs_weight': 1e4}


def parse_nan_guard_options(section, where='train.nan_guard'):
    """`train.nan_guard` with defaults: `{'max_consecutive_skips': int >= 1, 'max_abs_weight': float > 0 or None}`."""
    section = {} if section is None else section
    if not isinstance(section, dict):
        raise ValueError(f'{where}: expected a mapping (max_consecutive_skips, max_abs_weight), got {section!r}')
    unknown = sorted(set(section) - set(NAN_GUARD_DEFAULTS))
    if unknown:
        raise ValueError(f'{where}: unknown key(s) {unknown}; valid: {", ".join(NAN_GUARD_DEFAULTS)}')
    options = dict(NAN_GUARD_DEFAULTS, **section)
    skips = options['max_consecutive_skips']
    if isinstance(skips, bool) or not isinstance(skips, int) or skips < 1:
        raise ValueError(f'{where}.max_consecutive_skips: {skips!r} is not an integer >= 1')
    bound = options['max_abs_weight']
    if bound is not None:
        try:
            value = float(bound)  # YAML reads 1e4 (no dot) as a string
        except (TypeError, ValueError):
            value = float('nan')
        if isinstance(bound, bool) or not value > 0:
            raise ValueError(f'{where}.max_abs_weight: {bound!r} is not a number > 0 (or null)')
        options['max_abs_weight'] = value
    return options


@torch.no_grad()
def weights_problem(tensors, max_abs_weight=None):
    """'' when every tensor is finite and |w| <= max_abs_weight; otherwise what is wrong (for a message)."""
    tensors = [t for t in tensors if torch.is_tensor(t) and t.is_floating_point() and t.numel()]
    if not tensors:
        return ''
    # max |w| (NaN when any is NaN; stack promotes mixed dtypes): fused foreach passes and one host
    # synchronisation, the same value as get_total_norm(inf) whose CPU path is several times slower (run every step)
    maxima = torch._foreach_max(torch._foreach_abs(tensors))
    largest = float(torch.stack([m.to(maxima[0].device) for m in maxima]).max())
    if largest != largest or largest == float('inf'):
        return 'non-finite (NaN/inf)'
    if max_abs_weight is not None and largest > max_abs_weight:
        return f'exploded (largest |weight| {largest:.4g} > train.nan_guard.max_abs_weight {max_abs_weight:g})'
    return ''


class SMFDTrainingMixin:
    """Put first in the bases of an SMFD model (`class M(SMFDTrainingMixin, SRModel)`).

    - atomic `save_network` (`save_training_state`: BaseModel's, made atomic for every model by smfd_basicsr.patches;
      `training_state_dict` adds the protocol and the loss scale): a SIGKILL never leaves a half-written file;
    - `load_network` without executing code (`weights_only=True`);
    - `model_to_device`: DDP without `device_ids` on CPU (gloo);
    - optimizers Adam / AdamW / SGD; `train.scheduler` optional (constant lr, or the plateau protocol);
    - `optimize_parameters` for both models: `train.amp` autocast (+ GradScaler for fp16), `train.channels_last`,
      `train.compile`, and the NaN guard: a non-finite loss or gradient skips the step before `optimizer.step`
      (N in a row stop training), exploded weights stop it, and no checkpoint is written with such weights;
    - `nondist_validation`: BasicSR's loop (metrics, best values, tensorboard scalars) plus comparison pictures
      on disk and in tensorboard; subclasses provide `validation_sample()`;
    - the §3.4.6.3 protocol (plateau, early stop, save-best) after each validation.
    """

    default_protocol_metric = 'ssim'
    # attributes of one batch, dropped after each validation sample (a sample without gt must not see the last gt)
    _batch_attrs = ('lq', 'gt', 'output')

    # ------------------------------------------------------------------ set-up
    # model_to_device: BaseModel's, made CPU-DDP-safe for every BasicSR model by smfd_models.basicsr_patches.

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type not in SUPPORTED_OPTIMIZERS:
            raise ValueError(f'optimizer type {optim_type!r} is not supported; valid: {list(SUPPORTED_OPTIMIZERS)}')
        return getattr(torch.optim, optim_type)(params, lr, **kwargs)

    def setup_schedulers(self):
        """BasicSR's schedulers when `train.scheduler` is given; none (constant lr) otherwise."""
        train_opt = self.opt['train']
        if not train_opt.get('scheduler'):
            return
        plateau = (train_opt.get('protocol') or {}).get('plateau')
        if plateau and train_opt['scheduler'].get('type') == 'CosineAnnealingRestartLR':
            raise ValueError('train.protocol.plateau cannot be combined with CosineAnnealingRestartLR (it '
                             'overwrites the lr every iteration); use MultiStepLR or no train.scheduler.')
        super().setup_schedulers()

    def setup_ema(self):
        """BasicSR's EMA (`train.ema_decay` > 0): `net_g_ema`, saved as `params_ema`, used for validation."""
        self.ema_decay = self.opt['train'].get('ema_decay', 0)
        if self.ema_decay <= 0:
            return
        get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
        self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
        load_path = self.opt['path'].get('pretrain_network_g')
        if load_path is not None:
            self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
        else:
            self.model_ema(0)  # copy net_g's weights
        self.net_g_ema.eval()

    def setup_protocol(self):
        """Build the §3.4.6.3 protocol from `train.protocol` (validated against `val.metrics`)."""
        config = parse_protocol_options(self.opt['train'].get('protocol'), self.opt.get('val'),
                                        self.default_protocol_metric)
        self.protocol = TrainingProtocol(config)
        self._epoch_hint = 0
        if self.protocol.enabled:
            sections = ', '.join(f'{k} on {v["metric"]} ({v["mode"]})' for k, v in config.items() if k != 'dataset')
            get_root_logger().info(f'Training protocol (§3.4.6.3): {sections}')

    # ------------------------------------------------------------------ fast paths (docs/performance.md)
    def setup_fast_paths(self):
        """`train.amp`, `train.channels_last`, `train.compile` (smfd_models.fast_paths) and `train.nan_guard`,
        validated before the optimizer is built: a bad value is one line naming the key."""
        train_opt = self.opt['train']
        self.fast = fast_path_options(train_opt)
        self.nan_guard = parse_nan_guard_options(train_opt.get('nan_guard'))
        if self.fast['channels_last']:
            set_channels_last(self.net_g)  # in place (param.data): the optimizer's references stay valid
        # fp16 needs loss scaling; for bf16 / fp32 the scaler is a pass-through (scale() returns the loss)
        self.grad_scaler = grad_scaler_for(self.device, self.fast['amp'])
        # the compiled wrapper shares net_g's parameters; net_g itself is what is saved, validated and EMA'd
        self.train_net = compile_module(self.net_g) if self.fast['compile'] else self.net_g
        self._consecutive_skips, self.skipped_steps = 0, 0
        enabled = [k for k, v in self.fast.items() if v]
        if enabled:
            get_root_logger().info('Training fast paths: ' + ', '.join(
                f'{k}={v}' if k == 'amp' else k for k, v in self.fast.items() if v))

    def to_net_layout(self, x):
        """A network input in the layout of `train.channels_last` (NHWC when on; unchanged otherwise)."""
        return to_channels_last(x) if getattr(self, 'fast', {}).get('channels_last') else x

    # ------------------------------------------------------------------ data
    def degraded_input(self, data):
        """`data['lq']` on the device; for samples of a dataset with `degrade_on_device: true` (which hands over
        the sharp face, the drawn parameters and `degrade_on_device`), the same §3.4.1 degradation applied here by
        `smfd_data.degradation_torch.degrade_batch` (in fp32, outside autocast); in the network's memory layout."""
        on_device = data.get('degrade_on_device')
        if on_device is None or not bool(torch.as_tensor(on_device).any()):
            return self.to_net_layout(data['lq'].to(self.device))
        from smfd_data.degradation_torch import degrade_batch
        return self.to_net_layout(degrade_batch(data['gt'], list(data['degradation']), self.device))

    # ------------------------------------------------------------------ training step
    # Subclasses provide `forward_net(net)` (the network output for the current batch), `loss_terms(output)`
    # (pairs (name, loss or None)) and `_output_attr` (where the output is kept: 'output', 'logits').
    def optimize_parameters(self, current_iter):
        """One training step of either model: forward under `train.amp` autocast, losses in fp32, NaN guard."""
        self.optimizer_g.zero_grad(set_to_none=True)
        buffers = self._buffer_snapshot()
        with autocast_for(self.device, self.fast['amp']):
            output = self.forward_net(self.train_net)
        output = output.float()  # the losses (Dice's softmax, MSE) in fp32 whatever the forward's dtype
        setattr(self, self._output_attr, output)
        loss_dict = OrderedDict((name, value) for name, value in self.loss_terms(output) if value is not None)
        if not loss_dict:
            raise ValueError('no loss configured in train (e.g. pixel_opt / dice_opt)')
        self.finish_step(current_iter, sum(loss_dict.values()), loss_dict, buffers)

    def _buffer_snapshot(self):
        """net_g's buffers (BN running statistics and counters) and their copies from before this step's forward:
        a NaN forward pollutes them even when the step is skipped. The copies are kept across steps (one fused copy
        per step, no allocation); made again when a buffer was replaced (``net.to(...)``)."""
        buffers = list(self.get_bare_model(self.net_g).buffers())
        if not buffers:
            return None
        snapshot = getattr(self, '_buffer_copies', None)
        kept = None if snapshot is None else snapshot[0]
        if kept is None or len(kept) != len(buffers) or any(a is not b for a, b in zip(kept, buffers)):
            snapshot = self._buffer_copies = (buffers, [b.detach().clone() for b in buffers])
        else:
            torch._foreach_copy_(snapshot[1], buffers)
        return snapshot

    def finish_step(self, current_iter, l_total, loss_dict, buffers=None):
        """Backward, then the NaN guard *before* `optimizer.step`: a non-finite loss or gradient skips the step
        (weights, optimizer state and BN statistics unchanged); `train.nan_guard.max_consecutive_skips` skips in
        a row stop training. After the step, weights that are non-finite or larger than
        `train.nan_guard.max_abs_weight` stop training at once (and `save_network` refuses to write them)."""
        scaler = self.grad_scaler
        scaler.scale(l_total).backward()  # NaN losses too: under DDP every rank must join the all-reduce
        if scaler.is_enabled():
            scaler.unscale_(self.optimizer_g)
        params = [p for group in self.optimizer_g.param_groups for p in group['params'] if p.grad is not None]
        loss_finite = torch.isfinite(l_total.detach()).all()
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params]) if params else torch.zeros(())
        # the flag stays on the device: one host synchronisation per step (the .item() below), not three
        bad = (~loss_finite | ~torch.isfinite(grad_norm.to(loss_finite.device))).float().reshape(1)
        if self.opt.get('dist'):  # the same decision on every rank (the losses are per rank)
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if bool(bad.item()):
            loss_ok = bool(loss_finite)
            # fp16: an overflow of the *scaled* gradient is the GradScaler's normal way of finding its scale (it
            # skips the step and halves the scale); it counts towards the stop only once the scale is below 1
            overflow = scaler.is_enabled() and loss_ok and scaler.get_scale() >= 1
            if scaler.is_enabled():
                scaler.step(self.optimizer_g)  # sees the inf and skips
                scaler.update()
            self._skip_step(current_iter, loss_dict, loss_ok, float(grad_norm), buffers, overflow)
            return
        scaler.step(self.optimizer_g)
        scaler.update()
        self._consecutive_skips = 0
        self.check_weights(current_iter)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _skip_step(self, current_iter, loss_dict, loss_ok, grad_norm, buffers, overflow=False):
        self.optimizer_g.zero_grad(set_to_none=True)
        if buffers:  # (buffers, copies) of _buffer_snapshot
            with torch.no_grad():
                torch._foreach_copy_(*buffers)
        self.skipped_steps += 1
        if overflow:
            get_root_logger().info(f'fp16 gradient overflow at iteration {current_iter}: step skipped, loss scale '
                                   f'lowered to {self.grad_scaler.get_scale():g}.')
            return
        self._consecutive_skips += 1
        limit = self.nan_guard['max_consecutive_skips']
        terms = ', '.join(f'{name}={float(value.detach().float().mean()):.6g}' for name, value in loss_dict.items())
        what = 'loss' if not loss_ok else 'gradient'
        get_root_logger().warning(
            f'Non-finite {what} at iteration {current_iter} ({terms}, gradient norm {grad_norm:.6g}): step skipped, '
            f'weights unchanged ({self._consecutive_skips} in a row; stop at {limit}).')
        if self._consecutive_skips >= limit:
            raise RuntimeError(
                f'Non-finite loss or gradient in {self._consecutive_skips} consecutive iterations (the last '
                f'{current_iter}: {terms}); training stopped before any of them changed the weights (limit '
                'train.nan_guard.max_consecutive_skips). Lower the learning rate or check the data, then resume '
                'from the last checkpoint.')

    def check_weights(self, current_iter):
        """Raise when net_g's parameters are non-finite or exceed `train.nan_guard.max_abs_weight`."""
        problem = weights_problem(self.get_bare_model(self.net_g).parameters(), self.nan_guard['max_abs_weight'])
        if problem:
            raise RuntimeError(
                f'The optimizer step of iteration {current_iter} left the weights {problem}; training stopped and '
                'no checkpoint is written with them. Lower the learning rate (or raise '
                'train.nan_guard.max_abs_weight if such weights are intended), then resume from the last checkpoint.')

    def run_eval(self, forward):
        """``forward(net)`` on the EMA network when there is one, in eval mode, without grad; mode restored."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            result = forward(net)
        if was_training:
            net.train()
        return result

    # ------------------------------------------------------------------ checkpoints
    def _networks_to_save(self):
        if hasattr(self, 'net_g_ema'):
            return [self.net_g, self.net_g_ema], ['params', 'params_ema']
        return [self.net_g], ['params']

    def save(self, epoch, current_iter):
        nets, keys = self._networks_to_save()
        self.save_network(nets, 'net_g', current_iter, param_key=keys)
        if epoch >= 0:
            self._epoch_hint = epoch
        self.save_training_state(epoch, current_iter)
        self._last_state_iter = current_iter

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's format `{'params': ..., 'params_ema': ...}`, written atomically (tmp + fsync + replace);
        refused (RuntimeError, nothing written) for non-finite or exploded weights (`train.nan_guard`)."""
        if current_iter == -1:
            current_iter = 'latest'
        save_path = osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        save_dict = {}
        bound = getattr(self, 'nan_guard', NAN_GUARD_DEFAULTS)['max_abs_weight']
        for net_, key in zip(nets, keys):
            bare = self.get_bare_model(net_)
            problem = weights_problem(bare.parameters(), bound) or weights_problem(bare.buffers())
            if problem:  # a checkpoint to resume from must be one that can train on
                raise RuntimeError(f'Not saving {save_path}: the weights ({key}) are {problem}; the checkpoints '
                                   'already written are kept. Resume from the last one with a lower learning rate.')
            save_dict[key] = cpu_state_dict(bare)
        save_with_retry(save_dict, save_path, warn=get_root_logger().warning)

    def training_state_dict(self, epoch, current_iter):
        """BasicSR's training state (saved atomically by the patched `BaseModel.save_training_state`) plus the
        protocol counters (`state['protocol']`) and the fp16 loss scale."""
        state = super().training_state_dict(epoch, current_iter)
        if getattr(self, 'protocol', None) is not None and self.protocol.enabled:
            state['protocol'] = self.protocol.state_dict()
        scaler = getattr(self, 'grad_scaler', None)
        if scaler is not None and scaler.is_enabled():  # fp16: resume with the learned loss scale, not 65536
            state['grad_scaler'] = scaler.state_dict()
        return state

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """BasicSR's load_network, reading with `weights_only=True` (never executes code from a checkpoint)."""
        logger = get_root_logger()
        net = self.get_bare_model(net)
        try:
            state_dict = load_state_dict_safely(load_path, param_key)
        except KeyError:
            if param_key != 'params_ema':
                raise
            # as BasicSR: a checkpoint trained without EMA has only 'params'
            logger.info('Loading: params_ema does not exist, use params.')
            param_key = 'params'
            state_dict = load_state_dict_safely(load_path, param_key)
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        self._print_different_keys_loading(net, state_dict, strict)
        net.load_state_dict(state_dict, strict=strict)

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        self._epoch_hint = int(resume_state.get('epoch', 0))
        if getattr(self, 'protocol', None) is not None and resume_state.get('protocol'):
            self.protocol.load_state_dict(resume_state['protocol'])
            get_root_logger().info(f'Resumed training protocol counters: {resume_state["protocol"]}')
        scaler = getattr(self, 'grad_scaler', None)
        if scaler is not None and scaler.is_enabled() and resume_state.get('grad_scaler'):
            scaler.load_state_dict(resume_state['grad_scaler'])

    # ------------------------------------------------------------------ validation
    def validation_sample(self, img_name):
        """After `feed_data` + `test`: `(metric_data, files, picture)` of one validation sample.

        `files`: list of `(kind, image)` with kind 'output' (BGR uint8, as SRModel saves it), 'compare' (RGB
        uint8) or 'labels' (HW uint8); `picture`: RGB uint8 for tensorboard, or None.
        """
        raise NotImplementedError

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        if self.opt['rank'] == 0:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """SRModel's validation loop with SMFD's metric data, pictures and protocol step."""
        dataset_name = dataloader.dataset.opt['name']
        val_opt = self.opt['val']
        metrics_opt = val_opt.get('metrics')
        if metrics_opt:
            self._initialize_best_metric_results(dataset_name)
            self.metric_results = {metric: 0 for metric in metrics_opt}
        num_tb = int(val_opt.get('tb_images', 4)) if tb_logger is not None and isinstance(current_iter, int) else 0
        pbar = tqdm(total=len(dataloader), unit='image') if val_opt.get('pbar', False) else None

        count = 0
        try:
            for idx, val_data in enumerate(dataloader):
                img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
                self.feed_data(val_data)
                self.test()
                metric_data, files, picture = self.validation_sample(img_name)
                if save_img:
                    for kind, image in files:
                        self._save_validation_file(kind, image, dataset_name, img_name, current_iter)
                if idx < num_tb and picture is not None:
                    tb_logger.add_image(f'{dataset_name}/{img_name}', picture, current_iter, dataformats='HWC')
                if metrics_opt:
                    for name, metric_opt in metrics_opt.items():
                        self.metric_results[name] += calculate_metric(metric_data, metric_opt)
                for attr in self._batch_attrs:
                    if hasattr(self, attr):
                        delattr(self, attr)
                count += 1
                if pbar is not None:
                    pbar.update(1)
                    pbar.set_description(f'Test {img_name}')
        finally:
            if pbar is not None:
                pbar.close()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

        if metrics_opt and count:
            for metric in self.metric_results:
                self.metric_results[metric] = float(self.metric_results[metric]) / count
                self._update_best_metric_result(dataset_name, metric, self.metric_results[metric], current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
            self._protocol_after_metrics(dataset_name, current_iter)

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        """SRModel's log lines and tensorboard scalars (BaseModel lacks them)."""
        log_str = f'Validation {dataset_name}\n'
        for metric, value in self.metric_results.items():
            best = self.best_metric_results[dataset_name][metric]
            log_str += f'\t # {metric}: {value:.4f}\tBest: {best["val"]:.4f} @ {best["iter"]} iter\n'
        get_root_logger().info(log_str)
        if tb_logger is not None and isinstance(current_iter, int):
            for metric, value in self.metric_results.items():
                tb_logger.add_scalar(f'metrics/{dataset_name}/{metric}', value, current_iter)

    def _save_validation_file(self, kind, image, dataset_name, img_name, current_iter):
        """Paths: training `visualization/<img>/<img>_<iter>[_compare].png`, predicted labels
        `visualization/pred_masks/<iter>/<img>.png`; testing `visualization/<dataset>/<img>_<suffix>.png`,
        `.../<dataset>/compare/<img>.png`, `.../<dataset>/pred_masks/<img>.png` (a `mask_root_pred` folder)."""
        root = self.opt['path']['visualization']
        if self.opt['is_train']:
            folder, stem = osp.join(root, img_name), f'{img_name}_{current_iter}'
            labels_dir = osp.join(root, 'pred_masks', str(current_iter))
        else:
            suffix = self.opt['val'].get('suffix') or self.opt['name']
            folder, stem = osp.join(root, dataset_name), f'{img_name}_{suffix}'
            labels_dir = osp.join(folder, 'pred_masks')
        if kind == 'output':  # BGR, as BasicSR's SRModel writes it
            imwrite_atomic(osp.join(folder, f'{stem}.png'), image)
        elif kind == 'compare':
            if self.opt['is_train']:
                write_image(osp.join(folder, f'{stem}_compare.png'), image)
            else:
                write_image(osp.join(folder, 'compare', f'{img_name}.png'), image)
        elif kind == 'labels':
            write_image(osp.join(labels_dir, f'{img_name}.png'), image)
        else:
            raise ValueError(f'unknown validation file kind {kind!r}')

    # ------------------------------------------------------------------ protocol
    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        self._protocol_decision = None
        super().validation(dataloader, current_iter, tb_logger, save_img)
        protocol = getattr(self, 'protocol', None)
        if not self.is_train or protocol is None or not protocol.enabled:
            return
        decision = self._protocol_decision
        if self.opt['dist']:  # only rank 0 validated: share its decision so that every rank changes lr / stops
            payload = [decision, protocol.state_dict()]
            torch.distributed.broadcast_object_list(payload, src=0)
            decision = payload[0]
            protocol.load_state_dict(payload[1])
        if decision is None:
            return
        if decision['new_lrs'] is not None:
            self._set_lr(decision['new_lrs'])
        if getattr(self, '_last_state_iter', None) == current_iter:
            # BasicSR saved this iteration's state just before validating: refresh it with the new counters / lr
            self.save_training_state(self._epoch_hint, current_iter)
        if decision['stop']:
            self._stop_early(current_iter, tb_logger, ' '.join(decision['messages']))

    def _protocol_after_metrics(self, dataset_name, current_iter):
        """Feed `self.metric_results` of one validation to the protocol (rank 0) and save the best weights."""
        protocol = getattr(self, 'protocol', None)
        if not self.is_train or protocol is None or not protocol.enabled or not isinstance(current_iter, int):
            return
        # BasicSR validates once more after its loop, with current_iter = total_iter + 1 when the loop ran to the
        # end: that is the weights of iteration total_iter, counted once (a repeat of the same weights is skipped)
        current_iter = min(current_iter, int(self.opt['train']['total_iter']))
        if current_iter == protocol.last_iter:
            return
        if not protocol.monitors(dataset_name):
            return
        lrs = [[group['lr'] for group in optimizer.param_groups] for optimizer in self.optimizers]
        decision = protocol.step(self.metric_results, current_iter, lrs)
        if decision['save_best']:
            self._save_best(dataset_name, current_iter)
        logger = get_root_logger()
        for message in decision['messages']:
            logger.info(message)
        self._protocol_decision = decision

    @master_only
    def _save_best(self, dataset_name, current_iter):
        mon = self.protocol.save_best
        nets, keys = self._networks_to_save()
        self.save_network(nets, 'net_g', 'best', param_key=keys)
        info = {
            'metric': mon.metric,
            'mode': mon.mode,
            'value': float(mon.best),
            'iter': int(current_iter),
            'dataset': dataset_name,
            'weights': 'net_g_best.pth',
            'metrics': {k: float(v) for k, v in self.metric_results.items()},
        }
        atomic_write_json(info, osp.join(self.opt['path']['models'], 'net_g_best.json'))
        get_root_logger().info(f'Save-best: {mon.metric} = {mon.best:.6g} @ iter {current_iter} -> '
                               f'{osp.join(self.opt["path"]["models"], "net_g_best.pth")}')

    def _stop_early(self, current_iter, tb_logger, reason):
        get_root_logger().info(f'{reason} Saving the final checkpoint at iter {current_iter} and ending training '
                               '(exit status 0).')
        self.save(self._epoch_hint, current_iter)
        self.save(-1, -1)  # net_g_latest.pth, as at the end of BasicSR's loop
        if tb_logger is not None:
            tb_logger.close()
        if self.opt['dist']:
            torch.distributed.barrier()
        raise SMFDEarlyStop(reason)
