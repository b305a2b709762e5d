"""Restoring faces with the cascade: batches of aligned crops, and photos (detect → align → restore → paste back).

``restorer`` below is an ``SMFDCascade.restore``-like callable ``(x, mask) -> (restored, labels | None)``: the
PyTorch cascade (with its fast paths) or ``smfd_inference.onnx.OnnxCascade``.
"""
import numpy as np
import torch

from smfd_inference.face_helper import alignment_matrix, center_face, detect_faces, paste_face, warp_face

RESIZE_MODES = ('down', 'none')  # --resize: what happens to faces larger than the network's size
NON_FINITE_OUTPUT = 'the network produced NaN or infinite values (diverged weights?); nothing written'


def images_to_batch(images, device, channels_last=None):
    """Stack float RGB HWC images into a (B,3,H,W) float32 batch on `device`.

    `channels_last` (default: on CPU) keeps the images' own NHWC memory layout (a permuted view, no copy): the
    networks' oneDNN convolutions then run channels_last, which was faster than NCHW for eager fp32 on CPU
    (not on CUDA). The values are the same either way; only the memory format differs.
    """
    device = torch.device(device)
    if channels_last is None:
        channels_last = device.type == 'cpu'
    batch = torch.from_numpy(np.stack(images).astype(np.float32, copy=False)).permute(0, 3, 1, 2)
    return batch.to(device) if channels_last else batch.contiguous().to(device)


@torch.no_grad()
def restore_faces(restorer, faces, batch_size=4, device='cpu', masks=None):
    """Restore a list of equally sized float RGB faces in batches.

    ``restorer`` is an :class:`SMFDCascade` (its ``restore``) or any callable ``(x, mask) -> (out, labels)``, e.g.
    the ONNX one. Returns ``(outputs, labels)``: lists of float32 HWC images and uint8 HW label maps (None without
    masks).

    Raises ValueError when an output holds NaN/inf (weights that overflow in the forward pass): written, it would be
    a black picture with exit status 0. Every front end restores through here, so this is the one check.
    """
    restore = getattr(restorer, 'restore', restorer)
    outputs, labels = [], []
    for start in range(0, len(faces), batch_size):
        x = images_to_batch(faces[start:start + batch_size], device)
        mask = None
        if masks is not None:
            mask = torch.from_numpy(np.stack(masks[start:start + batch_size])).long().to(device)
        out, lab = restore(x, mask)
        if not bool(torch.isfinite(out).all()):
            raise ValueError(NON_FINITE_OUTPUT)
        outputs.extend(list(out.permute(0, 2, 3, 1).float().cpu().numpy()))
        labels.extend([None] * len(out) if lab is None else list(lab.to(torch.uint8).cpu().numpy()))
    return outputs, labels


def restore_any_size(restorer, faces, batch_size=4, device='cpu', masks=None):
    """``restore_faces`` for faces of different sizes: batches of equal size, results in input order."""
    outputs, labels = [None] * len(faces), [None] * len(faces)
    by_shape = {}
    for i, face in enumerate(faces):
        by_shape.setdefault(face.shape[:2], []).append(i)
    for idx in by_shape.values():
        out, lab = restore_faces(restorer, [faces[i] for i in idx], batch_size, device,
                                 None if masks is None else [masks[i] for i in idx])
        for i, o, la in zip(idx, out, lab):
            outputs[i], labels[i] = o, la
    return outputs, labels


def processing_shape(shape, size, resize='down'):
    """The (h, w) an aligned face of ``shape`` is restored at (--resize): ``size``² ('down'), or its own shape
    when it is larger than that and ``resize`` is 'none' (the network is fully convolutional)."""
    h, w = shape[:2]
    return (h, w) if resize == 'none' and max(h, w) > size else (size, size)


def larger_faces(details, size):
    """(w, h) of the faces of ``restore_in_the_wild``'s details that were larger than ``size`` in the photo."""
    return [(d['native_size'], d['native_size']) for d in details if d['native_size'] > size]


def larger_faces_note(larger, size, resize='down'):
    """One note on faces larger than the network's ``size`` (``larger``: their (w, h)), None when there were none.

    The network was trained on ``size``² faces (§3.4.2): 'down' loses a larger face's fine detail, 'none' runs the
    network at a scale it was not trained on; either way the user is told once.
    """
    if not larger:
        return None
    w, h = max(larger, key=lambda s: s[0] * s[1])
    if resize == 'down':
        return (f'note: the network works on {size}² faces and {len(larger)} face(s) were larger (up to {w}×{h}): '
                f'they were processed at {size}² and scaled back, which loses their fine detail; --resize none '
                'processes them at their own size (the network takes any size, at a scale it was not trained on)')
    return (f'note: the network was trained on {size}² faces; {len(larger)} face(s) were processed at their own, '
            f'larger size (up to {w}×{h}) (--resize none)')


def restore_in_the_wild(restorer, img, detector, size, batch_size=4, device='cpu', only_center_face=False,
                        det_size=640, threshold=0.8, match_color=True, resize='down'):
    """Detect, align, restore (batched) and paste back every face of ``img``.

    ``resize`` 'down' warps every face onto a ``size``² crop; 'none' keeps a face larger than that at its own
    scale in the photo (crop side = ``size`` / alignment scale), so no detail is lost to downscaling.
    Returns ``(restored image, list of per-face dicts {box, score, crop, output, labels, native_size})``;
    ``native_size`` is the crop side at the face's own scale.
    """
    faces = detect_faces(detector, img, det_size, threshold)
    if only_center_face and faces:
        faces = [center_face(faces, *img.shape[:2])]
    affines, crops, kept, native = [], [], [], []
    for face in faces:
        try:
            affine = alignment_matrix(face[2], size)
            native_size = int(round(size / float(np.hypot(*affine[0, :2]))))
            crop_size = native_size if resize == 'none' and native_size > size else size
            if crop_size != size:
                affine = alignment_matrix(face[2], crop_size)
        except ValueError:
            continue
        affines.append(affine)
        crops.append(warp_face(img, affine, crop_size))
        kept.append(face)
        native.append(native_size)
    outputs, labels = restore_any_size(restorer, crops, batch_size, device) if crops else ([], [])
    result = img
    for affine, output in zip(affines, outputs):
        result = paste_face(result, output, affine, match_color=match_color)
    details = [{'box': f[0], 'score': f[1], 'crop': c, 'output': o, 'labels': lab, 'native_size': n}
               for f, c, o, lab, n in zip(kept, crops, outputs, labels, native)]
    return result, details
