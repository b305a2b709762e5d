"""smfd_eval/blur_floor.py (scripts/blur_floor.py): the blurry-input floor of degrade_at source vs output."""
import pytest

from smfd_basicsr import prepare_basicsr

prepare_basicsr()

from smfd_eval.blur_floor import blur_floor, main  # noqa: E402


def test_blurring_before_the_resize_is_milder(tmp_path):
    result = blur_floor(n=2, size=128, gt_size=32, seed=0, workdir=str(tmp_path))
    assert set(result) == {'source', 'output'} and result['source']['images'] == 2
    # a 15..41-px kernel at 128² shrinks 4x with the face under `source`; at 32² it covers most of the face
    assert result['source']['psnr'] > result['output']['psnr'] + 2.0
    assert result['source']['ssim'] > result['output']['ssim']


def test_cli_prints_both_readings_and_rejects_bad_sizes(capsys):
    assert main(['-n', '1', '--size', '16', '--gt-size', '32']) == 2
    assert '--size >= --gt-size' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['-n', 'x'])
