"""SMFDMaskGeneratorModel: trains / tests the semantic mask generator (paper §3.4.4) inside BasicSR's loop.

Input: the blurry face, gray (dataset `gray_lq: true`, §3.4.2) or RGB (MaskGenerator converts it itself);
target: the dataset's group labels (one-hot or integer). Loss: Dice (§3.4.6.4, `train.dice_opt`, default
SMFDDiceLoss) plus an optional cross-entropy (`train.ce_opt`). Validation metrics get `pred` / `target`
(HW uint8 labels) and `num_classes` (smfd_dice, smfd_jaccard: Table 4.1); pictures are
`blurry | predicted mask | GT mask`, and `save_img` also writes the predicted labels as `<stem>.png`
(`pred_masks/`, usable as SMFDFaceDataset's `mask_root_pred`: the "generated masks" rows of Table 4.2).
"""
from collections import OrderedDict

from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.utils.registry import MODEL_REGISTRY

from smfd_models.model_base import SMFDTrainingMixin
from smfd_models.visualize import labels_to_rgb, mask_to_labels, side_by_side, tensor_to_rgb

DEFAULT_DICE_OPT = {'type': 'SMFDDiceLoss', 'loss_weight': 1.0}  # §3.4.6.4: "the loss function consisted in dice loss"


@MODEL_REGISTRY.register()
class SMFDMaskGeneratorModel(SMFDTrainingMixin, BaseModel):
    """Blurry face → K-class logits (§3.4.4), Dice loss, EMA, Dice/Jaccard validation (§3.4.6)."""

    default_protocol_metric = 'dice'  # §3.4.6.3: plateau / early stop / checkpointing on validation Dice
    _batch_attrs = ('lq', 'target', 'logits')

    def __init__(self, opt):
        super().__init__(opt)
        self.num_classes = int(opt['network_g'].get('num_classes', 5))
        self.net_g = build_network(opt['network_g'])
        self.net_g = self.model_to_device(self.net_g)
        self.print_network(self.net_g)

        load_path = self.opt['path'].get('pretrain_network_g')
        if load_path is not None:
            self.load_network(self.net_g, load_path, self.opt['path'].get('strict_load_g', True),
                              self.opt['path'].get('param_key_g', 'params'))
        if self.is_train:
            self.init_training_settings()

    def init_training_settings(self):
        self.net_g.train()
        train_opt = self.opt['train']
        self.setup_fast_paths()  # train.amp / channels_last / compile / nan_guard, checked before anything is built
        self.setup_ema()
        if not train_opt.get('dice_opt') and not train_opt.get('ce_opt'):
            train_opt['dice_opt'] = dict(DEFAULT_DICE_OPT)
        self.cri_dice = build_loss(train_opt['dice_opt']).to(self.device) if train_opt.get('dice_opt') else None
        self.cri_ce = build_loss(train_opt['ce_opt']).to(self.device) if train_opt.get('ce_opt') else None
        self.setup_optimizers()
        self.setup_schedulers()
        self.setup_protocol()

    def setup_optimizers(self):
        optim_opt = dict(self.opt['train']['optim_g'])
        optim_type = optim_opt.pop('type')
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    # ------------------------------------------------------------------ data / forward
    def feed_data(self, data):
        self.lq = self.degraded_input(data)
        if 'mask' in data:
            mask = data['mask']
            if mask.is_floating_point():
                if mask.dim() != 4 or mask.shape[1] != self.num_classes:
                    raise ValueError(f'dataset mask of shape {tuple(mask.shape)} does not match '
                                     f'network_g.num_classes = {self.num_classes}')
                mask = mask.argmax(dim=1)
            elif mask.dim() == 4:
                mask = mask[:, 0]
            self.target = mask.long().to(self.device)

    # the training step itself is SMFDTrainingMixin.optimize_parameters (fast paths, NaN guard)
    _output_attr = 'logits'

    def forward_net(self, net):
        return net(self.lq)

    def loss_terms(self, logits):
        if self.cri_dice:
            yield 'l_dice', self.cri_dice(logits, self.target)
        if self.cri_ce:
            yield 'l_ce', self.cri_ce(logits, self.target)

    def test(self):
        self.logits = self.run_eval(self.forward_net)

    def get_current_visuals(self):
        out_dict = OrderedDict(lq=self.lq.detach().cpu(), result=self.logits.detach().argmax(dim=1).cpu())
        if hasattr(self, 'target'):
            out_dict['gt'] = self.target.detach().cpu()
        return out_dict

    # ------------------------------------------------------------------ validation
    def validation_sample(self, img_name):
        pred = mask_to_labels(self.logits[0])
        metric_data = {'pred': pred, 'num_classes': self.num_classes}
        panels = [tensor_to_rgb(self.lq[0]), labels_to_rgb(pred, self.num_classes)]
        if hasattr(self, 'target'):
            metric_data['target'] = mask_to_labels(self.target[0])
            panels.append(labels_to_rgb(metric_data['target'], self.num_classes))
        picture = side_by_side(panels)
        return metric_data, [('compare', picture), ('labels', pred)], picture
