"""SMFDModel: trains / tests SMFD-UNet (paper §3.4.5) inside BasicSR's loop.

The deblurring network gets the blurry image and a semantic mask (§3.3). `mask_source` picks the mask:

- `gt`: the dataset's mask (ground-truth labels, or predicted ones via the dataset's `mask_root_pred`):
  "Ours with Original Mask" in Table 4.2 and every row of Table 4.3;
- `generator`: a frozen, pretrained MaskGenerator (`network_mask`, `path.pretrain_network_mask`) predicts it
  from the blurry input; the one-hot of its prediction (`mask_handoff: onehot`, default) or its softmax
  probabilities (`soft`) are the mask ("Ours with Generated Masks", Table 4.2);
- `none`: no mask (`network_g.use_mask: false`), the "backbone without semantic mask branch" of Table 4.3.

A val/test dataset may override it (`datasets.test_2.mask_source: generator`): the dataset puts its source into
each sample, so one test run gives both rows of Table 4.2 (see smfd_models.mask_source).

Loss: MSE (§3.4.6.4) unless `train.pixel_opt` says otherwise. Validation metrics get `img`, `img2` (uint8 BGR
as in SRModel) and `mask` (HW uint8 group labels of the dataset, for the region metrics); pictures are
`blurry | mask | output | GT`.
"""
import torch
from basicsr.archs import build_network
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY

from smfd_models.mask_source import check_mask_source, handoff_mask
from smfd_models.model_base import SMFDTrainingMixin
from smfd_models.visualize import labels_to_rgb, mask_to_labels, side_by_side, tensor_to_rgb

DEFAULT_PIXEL_OPT = {'type': 'MSELoss', 'loss_weight': 1.0, 'reduction': 'mean'}  # §3.4.6.4


@MODEL_REGISTRY.register()
class SMFDModel(SMFDTrainingMixin, SRModel):
    """SRModel for SMFD-UNet: dual input (blurry image, semantic mask), §3.4.5, trained as in §3.4.6."""

    default_protocol_metric = 'ssim'  # §3.4.6.3: plateau / early stop / checkpointing on validation SSIM
    _batch_attrs = ('lq', 'gt', 'output', 'mask_gt', 'mask_in', 'batch_mask_source')

    def __init__(self, opt):
        self.mask_source, mask_sources = check_mask_source(opt)
        self.mask_handoff = opt.get('mask_handoff', 'onehot')  # checked by check_mask_source
        train_opt = opt.get('train') or {}
        if opt.get('is_train') and not train_opt.get('pixel_opt') and not train_opt.get('perceptual_opt'):
            train_opt['pixel_opt'] = dict(DEFAULT_PIXEL_OPT)
        self.num_classes = int(opt['network_g'].get('num_mask_classes', 5))
        super().__init__(opt)
        if 'generator' in mask_sources:
            self._build_mask_generator()

    def init_training_settings(self):
        self.setup_fast_paths()  # train.amp / channels_last / compile / nan_guard, checked before anything is built
        super().init_training_settings()  # EMA, losses, optimizer, schedulers (SRModel)
        self.setup_protocol()

    def _build_mask_generator(self):
        """The frozen MaskGenerator of the cascade (Fig. 3.2): eval mode, no gradients, not optimised."""
        path_opt = self.opt['path']
        if path_opt.get('resume_state') and 'network_mask' not in (path_opt.get('ignore_resume_networks') or []):
            # BasicSR's check_resume has replaced the path by models/net_mask_<iter>.pth, which is never written
            raise ValueError('Resuming with mask_source: generator needs path.ignore_resume_networks: '
                             '[network_mask] so that path.pretrain_network_mask keeps pointing at the frozen '
                             f'mask generator (BasicSR set it to {path_opt.get("pretrain_network_mask")})')
        self.net_mask = build_network(self.opt['network_mask']).to(self.device)
        self.load_network(self.net_mask, path_opt['pretrain_network_mask'], path_opt.get('strict_load_mask', True),
                          path_opt.get('param_key_mask', 'params_ema'))
        self.net_mask.eval()
        for param in self.net_mask.parameters():
            param.requires_grad_(False)
        get_root_logger().info(f'Mask source: frozen MaskGenerator, mask_handoff {self.mask_handoff} '
                               f'({"one-hot of the argmax" if self.mask_handoff == "onehot" else "softmax"}).')

    # ------------------------------------------------------------------ data / forward
    def feed_data(self, data):
        self.lq = self.degraded_input(data)
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
        if 'mask' in data:
            self.mask_gt = self.to_net_layout(data['mask'].to(self.device))
        # a dataset's own mask_source (e.g. a test set evaluated with generated masks) overrides the model's
        self.batch_mask_source = data['mask_source'][0] if data.get('mask_source') else self.mask_source

    def _mask_for_net(self):
        """The mask SMFD-UNet gets for the current batch (None for `mask_source: none`)."""
        source = getattr(self, 'batch_mask_source', self.mask_source)
        if source == 'none':
            return None
        if source == 'gt':
            if not hasattr(self, 'mask_gt'):
                raise ValueError('mask_source: gt but the dataset gives no "mask" (set dataroot_mask / '
                                 'mask_root_pred, or use mask_source: generator)')
            return self.mask_gt
        with torch.no_grad():
            return handoff_mask(self.net_mask(self.lq), self.mask_handoff, self.num_classes)

    def _forward(self, net):
        self.mask_in = self._mask_for_net()
        return net(self.lq) if self.mask_in is None else net(self.lq, self.mask_in)

    # the training step itself is SMFDTrainingMixin.optimize_parameters (fast paths, NaN guard)
    _output_attr = 'output'

    def forward_net(self, net):
        return self._forward(net)

    def loss_terms(self, output):
        if self.cri_pix:
            yield 'l_pix', self.cri_pix(output, self.gt)
        if self.cri_perceptual:
            yield from zip(('l_percep', 'l_style'), self.cri_perceptual(output, self.gt))

    def test(self):
        self.output = self.run_eval(lambda net: self._forward(net))

    def get_current_visuals(self):
        out_dict = super().get_current_visuals()
        if getattr(self, 'mask_in', None) is not None:
            out_dict['mask'] = self.mask_in.detach().cpu()
        return out_dict

    # ------------------------------------------------------------------ validation
    def validation_sample(self, img_name):
        output = self.output.detach().cpu()
        sr_img = tensor2img([output])  # uint8 BGR, what BasicSR's metrics expect
        metric_data = {'img': sr_img}
        panels = [tensor_to_rgb(self.lq[0])]
        mask_in = getattr(self, 'mask_in', None)
        labels_in = None if mask_in is None else mask_to_labels(mask_in[0])
        if labels_in is not None:
            panels.append(labels_to_rgb(labels_in, self.num_classes))
        panels.append(tensor_to_rgb(output[0]))
        if hasattr(self, 'gt'):
            metric_data['img2'] = tensor2img([self.gt.detach().cpu()])
            panels.append(tensor_to_rgb(self.gt[0]))
        # region metrics use the dataset's labels; without them (generator on unlabeled data), the predicted ones
        region = mask_to_labels(self.mask_gt[0]) if hasattr(self, 'mask_gt') else labels_in
        if region is not None:
            metric_data['mask'] = region
        picture = side_by_side(panels)
        return metric_data, [('output', sr_img), ('compare', picture)], picture
