import os
import re

import cv2
import numpy as np

from smfd_data.face_labels import CLASS_INDEX, merge_part_masks
from smfd_data.synthetic_faces import (
    _write_one,
    generate_face,
    generate_face_parts,
    rng_for_face,
    write_celebamask_tree,
)


def test_face_has_main_parts_and_exact_labels():
    for i in range(5):
        rgb, parts, labels = generate_face_parts(np.random.default_rng(i), 64)
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert labels.shape == (64, 64) and labels.dtype == np.uint8 and labels.max() < 19
        present = set(np.unique(labels).tolist())
        for name in ('background', 'skin', 'nose', 'l_eye', 'r_eye', 'u_lip', 'l_lip'):
            assert CLASS_INDEX[name] in present, (i, name)
        assert np.array_equal(merge_part_masks(parts), labels)  # labels = the parts merged in the standard order
    with_hair = sum(CLASS_INDEX['hair'] in np.unique(generate_face(np.random.default_rng(i), 64)[1]) for i in range(8))
    assert with_hair >= 6  # a few faces are bald or wear a hat


def test_image_colours_follow_labels():
    rgb, labels = generate_face(np.random.default_rng(3), 128)
    img = rgb.astype(np.float32)
    mean = {name: img[labels == CLASS_INDEX[name]].mean(0) for name in ('skin', 'l_eye', 'r_eye', 'u_lip')}
    for name in ('l_eye', 'r_eye', 'u_lip'):
        assert np.abs(mean[name] - mean['skin']).max() > 15, name
    assert mean['u_lip'][0] - mean['u_lip'][1] > mean['skin'][0] - mean['skin'][1]  # lips are redder than skin
    # the large face regions are told apart by colour alone: nearest class mean classifies their pixels
    # (the background is a two-colour gradient, so its mean says little; it is left out)
    big = [c for c in np.unique(labels) if c != 0 and (labels == c).sum() > 300]
    assert len(big) >= 3
    means = np.stack([img[labels == c].mean(0) for c in big])
    inside = np.isin(labels, big)
    nearest = np.argmin(((img[inside][:, None] - means[None])**2).sum(-1), axis=1)
    assert (np.array(big)[nearest] == labels[inside]).mean() > 0.95


def test_deterministic_by_seed():
    a_rgb, a_lab = generate_face(np.random.default_rng(7), 48)
    b_rgb, b_lab = generate_face(np.random.default_rng(7), 48)
    c_rgb, _ = generate_face(np.random.default_rng(8), 48)
    assert np.array_equal(a_rgb, b_rgb) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_rgb, c_rgb)


def test_celebamask_tree_layout(tmp_path):
    root = str(tmp_path / 'tree')
    write_celebamask_tree(root, 3, seed=5, img_size=64, mask_size=32, workers=2, progress=False)
    assert sorted(os.listdir(os.path.join(root, 'CelebA-HQ-img'))) == ['0.jpg', '1.jpg', '2.jpg']
    assert os.listdir(os.path.join(root, 'CelebAMask-HQ-mask-anno')) == ['0']
    names = os.listdir(os.path.join(root, 'CelebAMask-HQ-mask-anno', '0'))
    assert all(re.fullmatch(r'0000[0-2]_[a-z_]+\.png', n) for n in names)
    for idx in range(3):
        img = cv2.imread(os.path.join(root, 'CelebA-HQ-img', f'{idx}.jpg'))
        assert img.shape == (64, 64, 3)
        _, parts, _ = generate_face_parts(rng_for_face(5, idx), 64)
        masks = {}
        for part in parts:  # exactly the parts present, binary 0/255, at the mask resolution
            mask = cv2.imread(os.path.join(root, 'CelebAMask-HQ-mask-anno', '0', f'{idx:05d}_{part}.png'),
                              cv2.IMREAD_UNCHANGED)
            assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
            masks[part] = mask
        assert sum(n.startswith(f'{idx:05d}_') for n in names) == len(parts)
        expected = cv2.resize(merge_part_masks(parts), (32, 32), interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(merge_part_masks(masks), expected)
    # one worker writes the same tree as two
    root1 = str(tmp_path / 'tree1')
    write_celebamask_tree(root1, 3, seed=5, img_size=64, mask_size=32, workers=1, progress=False)
    for name in names:
        a = cv2.imread(os.path.join(root, 'CelebAMask-HQ-mask-anno', '0', name), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(os.path.join(root1, 'CelebAMask-HQ-mask-anno', '0', name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(a, b)


def test_tree_folder_is_id_div_2000(tmp_path):
    _write_one((str(tmp_path), 4001, 0, 32, 32))
    assert os.path.isfile(tmp_path / 'CelebA-HQ-img' / '4001.jpg')
    assert os.path.isfile(tmp_path / 'CelebAMask-HQ-mask-anno' / '2' / '04001_skin.png')
