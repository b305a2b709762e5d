"""Restoring faces with the cascade: batches of aligned crops, and photos (detect → align → restore → paste back).

``restorer`` below is an ``SMFDCascade.restore``-like callable ``(x, mask) -> (restored, labels | None)``: the
PyTorch cascade (with its fast paths) or ``smfd_inference.onnx.OnnxCascade``.
"""
import numpy as np
import torch

from smfd_inference.face_helper import alignment_matrix, center_face, detect_faces, paste_face, warp_face


def images_to_batch(images, device):
    return torch.from_numpy(np.stack([np.ascontiguousarray(i.transpose(2, 0, 1)) for i in images])).float().to(device)


@torch.no_grad()
def restore_faces(restorer, faces, batch_size=4, device='cpu', masks=None):
    """Restore a list of equally sized float RGB faces in batches.

    ``restorer`` is an :class:`SMFDCascade` (its ``restore``) or any callable ``(x, mask) -> (out, labels)``, e.g.
    the ONNX one. Returns ``(outputs, labels)``: lists of float32 HWC images and uint8 HW label maps (None without
    masks).
    """
    restore = getattr(restorer, 'restore', restorer)
    outputs, labels = [], []
    for start in range(0, len(faces), batch_size):
        x = images_to_batch(faces[start:start + batch_size], device)
        mask = None
        if masks is not None:
            mask = torch.from_numpy(np.stack(masks[start:start + batch_size])).long().to(device)
        out, lab = restore(x, mask)
        outputs.extend(list(out.permute(0, 2, 3, 1).float().cpu().numpy()))
        labels.extend([None] * len(out) if lab is None else list(lab.to(torch.uint8).cpu().numpy()))
    return outputs, labels


def restore_in_the_wild(restorer, img, detector, size, batch_size=4, device='cpu', only_center_face=False,
                        det_size=640, threshold=0.8, match_color=True):
    """Detect, align, restore (batched) and paste back every face of ``img``.

    Returns ``(restored image, list of per-face dicts {box, score, crop, output, labels})``.
    """
    faces = detect_faces(detector, img, det_size, threshold)
    if only_center_face and faces:
        faces = [center_face(faces, *img.shape[:2])]
    affines, crops, kept = [], [], []
    for face in faces:
        try:
            affine = alignment_matrix(face[2], size)
        except ValueError:
            continue
        affines.append(affine)
        crops.append(warp_face(img, affine, size))
        kept.append(face)
    outputs, labels = restore_faces(restorer, crops, batch_size, device) if crops else ([], [])
    result = img
    for affine, output in zip(affines, outputs):
        result = paste_face(result, output, affine, match_color=match_color)
    details = [{'box': f[0], 'score': f[1], 'crop': c, 'output': o, 'labels': lab}
               for f, c, o, lab in zip(kept, crops, outputs, labels)]
    return result, details
