"""The one image loader (cdcml_lib/data/images.py): the whole image resized, as training reads
real corpora, and unreadable files named with their cause."""
import numpy as np
import pytest
from PIL import Image

from cdcml_lib.data import corpora, images
from cdcml_lib.runs import loader


def _photo(path, size=(60, 40)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_load_image_resizes_the_whole_image_as_the_dataset_build(tmp_path):
    _photo(tmp_path / "a.jpg")
    got = images.load_image(tmp_path / "a.jpg", 16)
    with Image.open(tmp_path / "a.jpg") as im:   # no crop: the whole 60x40 picture, squeezed
        expected = np.asarray(im.convert("RGB").resize((16, 16), Image.BILINEAR))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(corpora.load_image(tmp_path / "a.jpg", 16), got)


def test_training_and_matching_share_image_to_tensor():
    assert loader.image_to_tensor is images.image_to_tensor
    x = images.image_to_tensor(np.full((2, 8, 8, 3), 255, np.uint8), 4)
    assert tuple(x.shape) == (2, 3, 4, 4)
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)


def test_truncated_jpeg_names_the_file_and_the_cause(tmp_path):
    _photo(tmp_path / "whole.jpg", (200, 200))
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    with pytest.raises(images.ImageFileError, match=r"cut\.jpg: cannot decode it .*truncated"):
        images.load_image(tmp_path / "cut.jpg", 16)


def test_text_file_named_png_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(images.ImageFileError, match=r"notes\.png: not an image file"):
        images.load_image(tmp_path / "notes.png", 16)
    with pytest.raises(corpora.CorpusError, match=r"notes\.png"):
        corpora.load_image(tmp_path / "notes.png", 16)
