"""Make 19-class face label maps for any folder of aligned faces (FFHQ-style) with facexlib's parsing net.

CelebAMask-HQ ships hand-made masks; other face sets (FFHQ, CelebA-HQ crops, your own aligned faces) do
not. This script labels them with a pretrained face-parsing network from facexlib (BiSeNet or ParseNet,
both trained on CelebAMask-HQ's 19 classes) and writes the *prepared* layout directly, so the result is used
exactly like ``scripts/prepare_celebamask_hq.py`` output::

    OUT/images/<stem>.png   the face (resized to --size if given)       OUT/labels/<stem>.png  19 classes
    OUT/meta_info/{trainval,test,train,val,fold<k>_train,fold<k>_val}.txt      OUT/{images,labels}.lmdb (--lmdb)

Predicted labels are in CelebAMask-HQ's class order (``smfd_data.face_labels``): facexlib's BiSeNet uses
another order (face-parsing.PyTorch's) and is remapped; ParseNet already uses CelebAMask-HQ's order.
The weights download on first use into --weights-dir (default ``~/.cache/smfd/facexlib``); offline, copy the
file named in the error message there. Predicted masks are only as good as the parsing net (docs/data.md).

Example: python scripts/parse_face_masks.py -i datasets/ffhq_512 -o datasets/ffhq_prepared --size 256
"""
import argparse
import os

import cv2
import numpy as np
from tqdm import tqdm

from smfd_data.celebamask_hq import complete_prepared, outputs_ok, resize_pair
from smfd_data.face_labels import CLASS_INDEX
from smfd_data.image_io import imread_checked, imwrite_atomic, list_images
from smfd_inference.face_helper import DEFAULT_WEIGHTS_DIR
from smfd_models.checkpoint import cached_weights, load_weights

# facexlib's BiSeNet (face-parsing.PyTorch) class order; ParseNet uses CelebAMask-HQ's order.
BISENET_CLASSES = ['background', 'skin', 'l_brow', 'r_brow', 'l_eye', 'r_eye', 'eye_g', 'l_ear', 'r_ear', 'ear_r',
                   'nose', 'mouth', 'u_lip', 'l_lip', 'neck', 'neck_l', 'cloth', 'hair', 'hat']
PARSING_MODELS = {
    'bisenet': {
        'url': 'https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth',
        'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),  # ImageNet statistics (its ResNet-18)
        'to_celebamask': np.array([CLASS_INDEX[name] for name in BISENET_CLASSES], dtype=np.uint8),
    },
    'parsenet': {
        'url': 'https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth',
        'mean': (0.5, 0.5, 0.5), 'std': (0.5, 0.5, 0.5),
        'to_celebamask': np.arange(len(BISENET_CLASSES), dtype=np.uint8),
    },
}


def build_parsing_net(model='bisenet', weights_dir=None, pretrained=True, device='cpu'):
    """facexlib's BiSeNet / ParseNet with 19 classes; ``pretrained=False`` leaves it randomly initialised."""
    from facexlib.parsing import BiSeNet, ParseNet

    if model not in PARSING_MODELS:
        raise ValueError(f'unknown parsing model {model!r}; choose one of {sorted(PARSING_MODELS)}')
    net = BiSeNet(num_class=19) if model == 'bisenet' else ParseNet(in_size=512, out_size=512, parsing_ch=19)
    if pretrained:
        load_weights(net, cached_weights(PARSING_MODELS[model]['url'], weights_dir or DEFAULT_WEIGHTS_DIR), None)
    return net.eval().to(device)


def parse_batch(net, images, model='bisenet', parse_size=512, device='cpu'):
    """Label a batch of BGR uint8 faces: list of HxW uint8 maps in CelebAMask-HQ's 19-class order."""
    import torch

    cfg = PARSING_MODELS[model]
    if model == 'parsenet' and parse_size != 512:
        raise ValueError('ParseNet only works at --parse-size 512')
    batch = np.stack([cv2.resize(img, (parse_size, parse_size), interpolation=cv2.INTER_LINEAR)[..., ::-1]
                      for img in images]).astype(np.float32) / 255.0
    batch = (batch - np.float32(cfg['mean'])) / np.float32(cfg['std'])
    with torch.no_grad():
        logits = net(torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()).to(device))[0]
    preds = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
    labels = []
    for img, pred in zip(images, preds):
        pred = cfg['to_celebamask'][pred]
        labels.append(cv2.resize(pred, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST))
    return labels


def list_faces(folder):
    """Sorted {stem: path} of the images in ``folder``; two files with one stem are an error."""
    faces = {stem: os.path.join(folder, name) for stem, name in list_images(folder).items()}
    if not faces:
        raise FileNotFoundError(f'{folder}: no images')
    return faces


def parse_folder(faces, out, net, model='bisenet', size=None, parse_size=512, batch_size=8, device='cpu',
                 skip_bad=False):
    """Write ``OUT/images`` and ``OUT/labels`` for ``faces`` ({stem: path}); resumable.

    Returns:
        tuple: ``(ok_stems, counts, bad_messages)``.
    """
    ok, bad, counts = [], [], {'done': 0, 'skipped': 0}
    todo = []
    for stem, path in faces.items():
        if outputs_ok(os.path.join(out, 'images', f'{stem}.png'), os.path.join(out, 'labels', f'{stem}.png'), size):
            ok.append(stem)
            counts['skipped'] += 1
        else:
            todo.append(stem)
    for start in tqdm(range(0, len(todo), batch_size), unit='batch', desc='parse'):
        stems, images = [], []
        for stem in todo[start:start + batch_size]:
            try:
                images.append(imread_checked(faces[stem], cv2.IMREAD_COLOR))
                stems.append(stem)
            except (OSError, ValueError) as err:
                if not skip_bad:
                    raise
                bad.append(str(err))
        if not images:
            continue
        for stem, img, labels in zip(stems, images, parse_batch(net, images, model, parse_size, device)):
            img, labels = resize_pair(img, labels, size)
            imwrite_atomic(os.path.join(out, 'labels', f'{stem}.png'), labels)
            imwrite_atomic(os.path.join(out, 'images', f'{stem}.png'), img)
            ok.append(stem)
            counts['done'] += 1
    return sorted(ok), counts, bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='folder of aligned face images')
    parser.add_argument('-o', '--output', required=True, help='output folder (prepared layout)')
    parser.add_argument('--model', choices=sorted(PARSING_MODELS), default='bisenet', help='facexlib parsing net')
    parser.add_argument('--weights-dir', default=DEFAULT_WEIGHTS_DIR, help='weights cache (downloads go here)')
    parser.add_argument('--size', type=int, default=None, help='output side in pixels (default: input size)')
    parser.add_argument('--parse-size', type=int, default=512, help='network input side (ParseNet: 512 only)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda', 'cuda:1' or 'auto'")
    parser.add_argument('--lmdb', action='store_true', help='also write OUT/images.lmdb and OUT/labels.lmdb')
    parser.add_argument('--seed', type=int, default=0, help='seed of the splits')
    parser.add_argument('--test-ratio', type=float, default=0.2)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--skip-bad', action='store_true', help='skip unreadable images with a warning')
    args = parser.parse_args(argv)

    import torch
    device = ('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device
    faces = list_faces(args.input)
    net = build_parsing_net(args.model, args.weights_dir, pretrained=True, device=device)
    ok, counts, bad = parse_folder(faces, args.output, net, args.model, args.size, args.parse_size,
                                   args.batch_size, device, args.skip_bad)
    return complete_prepared(args, ok, counts, bad, 'parsed')

