"""Where SMFD-UNet's mask comes from (§3.3, §3.4.6; Table 4.2 rows): one check for models and option files.

- ``gt``: the dataset's mask (ground-truth labels, or predicted ones via the dataset's ``mask_root_pred``):
  "Ours with Original Mask" in Table 4.2 and every row of Table 4.3;
- ``generator``: a frozen, pretrained MaskGenerator predicts it from the blurry input ("Ours with Generated
  Masks", Table 4.2);
- ``none``: no mask (``network_g.use_mask: false``), the "backbone without semantic mask branch" of Table 4.3.

With ``generator``, ``mask_handoff`` (``onehot`` default, or ``soft``) says what SMFD-UNet receives: the one-hot of
the prediction (what a net trained on ground-truth masks saw) or the softmax probabilities. A 19-class generator
(§3.4.4) is grouped to 5 first (§3.4.2).

A val/test dataset may override the model's ``mask_source`` (``datasets.test_2.mask_source: generator``); the
dataset then puts its source into every sample (``mask_source``), so the model reads it from the batch.
"""
import functools

import torch

from smfd_data.face_labels import NUM_CELEBAMASK_CLASSES, grouping_lut

MASK_SOURCES = ('gt', 'generator', 'none')
# How the generator's prediction reaches SMFD-UNet (issue 10): ``onehot`` (argmax, then one-hot: what a net trained
# on ground-truth masks has seen, the default) or ``soft`` (the softmax probabilities).
MASK_HANDOFFS = ('onehot', 'soft')


def check_mask_handoff(value, where='mask_handoff'):
    if value not in MASK_HANDOFFS:
        raise ValueError(f"option '{where}': {value!r} is not valid. Valid: {', '.join(MASK_HANDOFFS)}")
    return value


def group_matrix(num_in, num_out):
    """(num_in, num_out) 0/1 matrix summing generator classes into SMFD-UNet's mask classes: identity when equal,
    the §3.4.2 grouping 19 → 5 for a 19-class generator."""
    if num_in == num_out:
        return torch.eye(num_in)
    lut = grouping_lut()
    if num_in != NUM_CELEBAMASK_CLASSES or int(lut.max()) + 1 != num_out:
        raise ValueError(f'mask generator predicts {num_in} classes but SMFD-UNet takes {num_out}; only equal counts '
                         f'or {NUM_CELEBAMASK_CLASSES} → {int(lut.max()) + 1} (the §3.4.2 grouping) can be handed off')
    return torch.nn.functional.one_hot(torch.as_tensor(lut, dtype=torch.long), num_out).float()


@functools.lru_cache(maxsize=16)
def _cached_group_matrix(num_in, num_out, device, dtype):
    # built outside inference_mode: a first call under it would give an inference tensor that a later call with
    # autograd on could not save for backward
    with torch.inference_mode(False):
        return group_matrix(num_in, num_out).to(device=device, dtype=dtype)


def _group_matrix_like(num_in, num_out, like):
    """``group_matrix`` on ``like``'s device and dtype, built once per (classes, device, dtype): ``handoff_mask``
    runs every forward pass. Not cached while torch.compile / torch.export trace (they put it in the graph)."""
    if torch.compiler.is_compiling():
        return group_matrix(num_in, num_out).to(like)
    return _cached_group_matrix(num_in, num_out, like.device, like.dtype)


def handoff_mask(logits, mode='onehot', num_classes=None):
    """Generator logits (B, C, H, W) → SMFD-UNet's mask (B, K, H, W), float.

    Probabilities are summed into K groups when C = 19 and K = 5 (§3.4.2); ``soft`` returns them, ``onehot`` the
    one-hot of their argmax. Matrix product and comparison only, so the cascade still traces to ONNX.
    """
    check_mask_handoff(mode)
    probs = torch.softmax(logits, dim=1)
    k = probs.shape[1] if num_classes is None else int(num_classes)
    if probs.shape[1] != k:
        probs = torch.einsum('bchw,ck->bkhw', probs, _group_matrix_like(probs.shape[1], k, probs))
    if mode == 'soft':
        return probs
    classes = torch.arange(k, device=probs.device).view(1, k, 1, 1)
    return (probs.argmax(dim=1, keepdim=True) == classes).to(probs.dtype)


def _check_one_source(source, use_mask, where):
    if source not in MASK_SOURCES:
        raise ValueError(f"option '{where}': {source!r} is not valid. Valid: {', '.join(MASK_SOURCES)}")
    if source == 'none' and use_mask:
        raise ValueError(f"option '{where}': none needs network_g.use_mask: false (with use_mask the mask branch "
                         'of SMFDUNet would get no mask)')
    if source != 'none' and not use_mask:
        raise ValueError(f"option '{where}': network_g.use_mask is false, so the {source!r} mask would be "
                         'ignored; set mask_source: none')


def check_mask_source(opt):
    """Validate ``mask_source`` and the per-dataset overrides against ``network_g.use_mask`` (and, for
    ``generator``, the frozen mask generator's options). Returns ``(model's source, set of all sources)``."""
    source = opt.get('mask_source', 'gt')
    use_mask = (opt.get('network_g') or {}).get('use_mask', True)
    _check_one_source(source, use_mask, 'mask_source')
    sources = {source}
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        if isinstance(dataset_opt, dict) and 'mask_source' in dataset_opt:
            _check_one_source(dataset_opt['mask_source'], use_mask, f'datasets.{phase}.mask_source')
            sources.add(dataset_opt['mask_source'])
    if 'generator' in sources:
        if not opt.get('network_mask'):
            raise ValueError("option 'network_mask': mask_source: generator needs network_mask (e.g. "
                             '{type: MaskGenerator, ...})')
        if not (opt.get('path') or {}).get('pretrain_network_mask'):
            raise ValueError("option 'path.pretrain_network_mask': mask_source: generator needs the weights of a "
                             'mask generator trained with options/train_mask_generator.yml')
        k_mask = opt['network_mask'].get('num_classes', 5)
        k_g = (opt.get('network_g') or {}).get('num_mask_classes', 5)
        try:
            group_matrix(k_mask, k_g)
        except ValueError:
            raise ValueError(f'network_mask.num_classes ({k_mask}) differs from network_g.num_mask_classes ({k_g}) '
                             f'and is not the 19 CelebAMask-HQ classes grouped to 5') from None
    check_mask_handoff(opt.get('mask_handoff', 'onehot'))
    return source, sources
