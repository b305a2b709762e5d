"""What both SMFD models change in BasicSR's BaseModel: safe checkpoints, CPU DDP, NaN guard, validation loop
with pictures, and the §3.4.6.3 protocol (`smfd_models.protocol`) wired into BasicSR's loop.
"""
import time
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
from smfd_models.checkpoint import atomic_torch_save, load_state_dict_safely
from smfd_models.protocol import SMFDEarlyStop, TrainingProtocol, parse_protocol_options

__all__ = ['SUPPORTED_OPTIMIZERS', 'SMFDTrainingMixin']

SUPPORTED_OPTIMIZERS = ('Adam', 'AdamW', 'SGD')


class SMFDTrainingMixin:
    """Put first in the bases of an SMFD model (`class M(SMFDTrainingMixin, SRModel)`).

    - atomic `save_network` / `save_training_state`: a SIGKILL never leaves a half-written `.pth` / `.state`;
    - `load_network` without executing code (`weights_only=True`);
    - `model_to_device`: DDP without `device_ids` on CPU (gloo);
    - optimizers Adam / AdamW / SGD; `train.scheduler` optional (constant lr, or the plateau protocol);
    - `check_finite_losses`: a NaN/inf loss stops training before `optimizer.step`;
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

    # ------------------------------------------------------------------ data
    def degraded_input(self, data):
        """`data['lq']` on the device; for samples of a dataset with `degrade_on_device: true` (which hands over
        the sharp face, the drawn parameters and `degrade_on_device`), the same §3.4.1 degradation applied here by
        `smfd_data.degradation_torch.degrade_batch`."""
        on_device = data.get('degrade_on_device')
        if on_device is None or not bool(torch.as_tensor(on_device).any()):
            return data['lq'].to(self.device)
        from smfd_data.degradation_torch import degrade_batch
        return degrade_batch(data['gt'], list(data['degradation']), self.device)

    # ------------------------------------------------------------------ safety
    @staticmethod
    def check_finite_losses(current_iter, l_total, loss_dict):
        """Raise before backward/optimizer.step when the loss is NaN/inf, naming the iteration and the terms."""
        if bool(torch.isfinite(l_total.detach()).all()):
            return
        terms = ', '.join(f'{name}={float(value.detach().mean()):.6g}' for name, value in loss_dict.items())
        total = float(l_total.detach())
        raise RuntimeError(f'Non-finite loss at iteration {current_iter}: {terms} (total {total:.6g}). '
                           'Training stopped before optimizer.step, so the weights stay finite; lower the '
                           'learning rate or check the data, then resume from the last checkpoint.')

    def finish_step(self, current_iter, l_total, loss_dict):
        """The end of every optimize_parameters: NaN guard, backward, step, logged losses, EMA update."""
        self.check_finite_losses(current_iter, l_total, loss_dict)
        l_total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

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
        """BasicSR's format `{'params': ..., 'params_ema': ...}`, written atomically (tmp + fsync + replace)."""
        if current_iter == -1:
            current_iter = 'latest'
        save_path = osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        save_dict = {}
        for net_, key in zip(nets, keys):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[key] = OrderedDict(
                ((k[7:] if k.startswith('module.') else k), v.cpu()) for k, v in state_dict.items())
        self._save_with_retry(save_dict, save_path)

    @master_only
    def save_training_state(self, epoch, current_iter):
        """BasicSR's training state plus the protocol counters (`state['protocol']`), written atomically."""
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        if getattr(self, 'protocol', None) is not None and self.protocol.enabled:
            state['protocol'] = self.protocol.state_dict()
        self._save_with_retry(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    @staticmethod
    def _save_with_retry(obj, save_path, retries=3):
        # a network file system may fail once (BasicSR retries too); the file is never left half-written
        for attempt in range(retries):
            try:
                atomic_torch_save(obj, save_path)
                return
            except OSError as err:
                if attempt == retries - 1:
                    raise OSError(f'Cannot save {save_path}: {err}') from err
                get_root_logger().warning(f'Saving {save_path} failed ({err}); retrying.')
                time.sleep(1)

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
