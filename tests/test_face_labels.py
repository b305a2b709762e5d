import numpy as np
import pytest

from smfd_data.face_labels import (
    CELEBAMASK_CLASSES,
    CELEBAMASK_PARTS,
    CLASS_INDEX,
    PAPER_GROUPS,
    colorize,
    flip_lut,
    group_labels,
    group_names,
    grouping_lut,
    merge_part_masks,
    palette,
)

# §3.4.2, written out part by part (0 background & rest, 1 components, 2 wearings, 3 skin, 4 hair)
PAPER_GROUP_OF = {
    'background': 0, 'neck': 0, 'cloth': 0,
    'nose': 1, 'l_eye': 1, 'r_eye': 1, 'l_brow': 1, 'r_brow': 1, 'l_ear': 1, 'r_ear': 1, 'u_lip': 1, 'l_lip': 1,
    'mouth': 1,
    'hat': 2, 'ear_r': 2, 'neck_l': 2, 'eye_g': 2,
    'skin': 3,
    'hair': 4,
}


def test_classes_follow_celebamask_merge_order():
    assert len(CELEBAMASK_CLASSES) == 19 and CELEBAMASK_CLASSES[0] == 'background'
    assert CELEBAMASK_PARTS[:3] == ['skin', 'nose', 'eye_g'] and CELEBAMASK_PARTS[-3:] == ['neck_l', 'neck', 'cloth']
    assert CLASS_INDEX['hair'] == 13 and CLASS_INDEX['neck_l'] == 16


def test_paper_grouping_of_every_part():
    lut = grouping_lut()
    assert lut.dtype == np.uint8 and lut.shape == (19,)
    assert set(PAPER_GROUP_OF) == set(CELEBAMASK_CLASSES)
    for name, group in PAPER_GROUP_OF.items():
        assert lut[CLASS_INDEX[name]] == group, name
    assert group_names() == ['background', 'components', 'wearings', 'skin', 'hair']
    assert np.array_equal(grouping_lut(PAPER_GROUPS), lut)


def test_custom_grouping_dict_and_list():
    lut = grouping_lut({'bg': [], 'face': ['skin', 'nose'], 'hair': ['hair', 'hat']})
    assert lut[CLASS_INDEX['nose']] == 1 and lut[CLASS_INDEX['hat']] == 2
    assert lut[CLASS_INDEX['l_eye']] == 0  # unlisted parts fall into group 0
    assert np.array_equal(grouping_lut([[], ['skin', 'nose'], ['hair', 'hat']]), lut)
    assert group_names([[], ['skin']]) == ['group0', 'group1']
    identity = grouping_lut([[name] for name in CELEBAMASK_CLASSES])
    assert np.array_equal(identity, np.arange(19))


@pytest.mark.parametrize('groups, message', [
    ({'a': ['skin'], 'b': ['nostril']}, "unknown part 'nostril'"),
    ({'a': ['skin'], 'b': ['skin']}, "'skin' is listed in both 'a' and 'b'"),
    ({'a': 'skin'}, 'must be a list'),
    ('skin', 'must be a dict'),
])
def test_bad_grouping_is_explained(groups, message):
    with pytest.raises(ValueError, match=message):
        grouping_lut(groups)


def test_group_labels_maps_values():
    labels = np.array([[0, 1, 2], [13, 14, 17]], dtype=np.uint8)  # bg, skin, nose / hair, hat, neck
    assert group_labels(labels).tolist() == [[0, 3, 1], [4, 2, 0]]
    with pytest.raises(ValueError, match='out of range'):
        group_labels(np.array([[19]], dtype=np.uint8))


def test_flip_lut_swaps_pairs_and_is_an_involution():
    lut = flip_lut()
    for left, right in [('l_eye', 'r_eye'), ('l_brow', 'r_brow'), ('l_ear', 'r_ear')]:
        assert lut[CLASS_INDEX[left]] == CLASS_INDEX[right] and lut[CLASS_INDEX[right]] == CLASS_INDEX[left]
    unchanged = [i for i, name in enumerate(CELEBAMASK_CLASSES) if not name.startswith(('l_', 'r_')) or name == 'l_lip']
    assert all(lut[i] == i for i in unchanged)  # l_lip is the *lower* lip, not a left part
    assert np.array_equal(lut[lut], np.arange(19))
    # a left eye in the image's left half becomes a right eye in the right half after flip + lut
    labels = np.zeros((2, 4), np.uint8)
    labels[:, 0] = CLASS_INDEX['l_eye']
    flipped = lut[labels[:, ::-1]]
    assert (flipped[:, 3] == CLASS_INDEX['r_eye']).all() and (flipped[:, :3] == 0).all()


def test_merge_part_masks_later_parts_overwrite():
    skin = np.zeros((4, 4), np.uint8)
    skin[:3, :3] = 255
    nose = np.zeros((4, 4), np.uint8)
    nose[1:, 1:] = 1
    cloth = np.zeros((4, 4), np.uint8)
    cloth[3, :] = 255
    labels = merge_part_masks({'cloth': cloth, 'nose': nose, 'skin': skin})  # dict order must not matter
    expected = np.array([[1, 1, 1, 0], [1, 2, 2, 2], [1, 2, 2, 2], [18, 18, 18, 18]], np.uint8)
    assert np.array_equal(labels, expected)
    with pytest.raises(ValueError, match='unknown part'):
        merge_part_masks({'beard': skin})


def test_palette_and_colorize():
    pal19 = palette(19)
    assert pal19.shape == (19, 3) and pal19.dtype == np.uint8
    assert tuple(pal19[CLASS_INDEX['skin']]) == (204, 0, 0) and tuple(pal19[0]) == (0, 0, 0)
    for k in (5, 8, 19, 25):
        assert len({tuple(c) for c in palette(k)}) == k  # distinct colours
    labels = np.array([[0, 3], [4, 1]], np.uint8)
    rgb = colorize(labels)  # all < 5: the 5-group palette
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[1, 0], palette(5)[4]) and np.array_equal(rgb[0, 1], palette(5)[3])
    assert np.array_equal(colorize(labels, num_classes=19)[0, 1], pal19[3])
    assert np.array_equal(colorize(np.array([[13]])), pal19[13][None, None])  # ≥ 5: the 19-class palette
    custom = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    assert colorize(np.array([[1, 0]]), palette=custom).tolist() == [[[4, 5, 6], [1, 2, 3]]]
    with pytest.raises(ValueError, match='no colour'):
        colorize(np.array([[5]]), num_classes=5)
