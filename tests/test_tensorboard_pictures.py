"""Validation pictures (blurry | mask | output | GT) in tensorboard, read back from the event file of a short
training run through BasicSR's own entry (`python -m basicsr.train`)."""
import glob

import cv2
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from tests.test_models import SIZE, SMFD_METRICS, TINY_SMFD_NET, make_prepared, train, train_opt


def tensorboard_images(logdir):
    """``{tag: [(step, RGB uint8 image)]}`` of every image summary under ``logdir``."""
    events = EventAccumulator(logdir, size_guidance={IMAGES: 0})  # 0 = keep every image, not a sample
    events.Reload()
    return {tag: [(e.step, _decode_png(e.encoded_image_string)) for e in events.Images(tag)]
            for tag in events.Tags()[IMAGES]}


def _decode_png(data):
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def test_short_training_run_logs_validation_pictures(tmp_path):
    make_prepared(str(tmp_path / 'data'))
    opt = train_opt('data', 'tb_pictures', 'SMFDModel', TINY_SMFD_NET, SMFD_METRICS, total_iter=2, val_freq=2,
                    mask_source='gt')  # val.tb_images: 1 of the 2 validation faces
    _, exp = train(tmp_path, opt)
    logdirs = glob.glob(str(tmp_path / 'tb_logger' / 'tb_pictures'))
    assert logdirs and glob.glob(logdirs[0] + '/events.out.tfevents.*')
    images = tensorboard_images(logdirs[0])
    assert list(images) == ['val/00000']  # tb_images caps the count; tag = <dataset>/<image>
    steps = [step for step, _ in images['val/00000']]
    assert steps == [2, 3]  # the validation at iter 2 and BasicSR's final one (current_iter ends at total + 1)
    picture = images['val/00000'][0][1]
    assert picture.shape == (SIZE, 4 * SIZE + 3 * 2, 3)  # blurry | mask | output | GT with 2-px gaps
    # the same picture as the one written to disk at that iteration
    on_disk = cv2.imread(str(exp / 'visualization' / '00000' / '00000_2_compare.png'))[..., ::-1]
    assert np.array_equal(picture, on_disk)
    panels = [picture[:, i * (SIZE + 2):i * (SIZE + 2) + SIZE] for i in range(4)]
    assert not np.array_equal(panels[0], panels[3])  # blurry input differs from the sharp GT
