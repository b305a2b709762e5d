"""Where SMFD-UNet's mask comes from (§3.3, §3.4.6; Table 4.2 rows): one check for models and option files.

- ``gt``: the dataset's mask (ground-truth labels, or predicted ones via the dataset's ``mask_root_pred``):
  "Ours with Original Mask" in Table 4.2 and every row of Table 4.3;
- ``generator``: a frozen, pretrained MaskGenerator predicts it from the blurry input ("Ours with Generated
  Masks", Table 4.2);
- ``none``: no mask (``network_g.use_mask: false``), the "backbone without semantic mask branch" of Table 4.3.

A val/test dataset may override the model's ``mask_source`` (``datasets.test_2.mask_source: generator``); the
dataset then puts its source into every sample (``mask_source``), so the model reads it from the batch.
"""

MASK_SOURCES = ('gt', 'generator', 'none')


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
        if k_mask != k_g:
            raise ValueError(f'network_mask.num_classes ({k_mask}) differs from network_g.num_mask_classes ({k_g})')
    return source, sources
