"""``prodfusion add`` on a model with photos: a photo file written anew is re-encoded only
when it holds another photo (a re-synced image folder re-encodes nothing)."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from prodfusion.cli import main
from prodfusion.recommender import Recommender
from tests.encoders.conftest import draw


def test_add_re_encodes_only_photos_that_changed(tmp_path, tiny_clip_path, capsys,
                                                 monkeypatch):
    img = tmp_path / "img"
    img.mkdir()
    kinds = {"0001": "red_disk", "0002": "blue_stripes", "0003": "green_square",
             "0004": "red_disk"}
    for pid, kind in kinds.items():
        draw(kind, shift=int(pid[-1])).save(img / f"{pid}.jpg", quality=95)
        os.utime(img / f"{pid}.jpg", (1e9, 1e9))  # long before the build
    (tmp_path / "catalog.csv").write_text(
        "id,title\n0001,Red dress\n0002,Blue shirt\n0003,Green scarf\n0004,Red skirt\n",
        encoding="utf-8")
    model = tmp_path / "model"
    assert main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "id",
                 "--image-template", "{product_id}.jpg", "--image-root", str(img),
                 "--text", "none", "--image", f"clip:{tiny_clip_path}",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(model)]) == 0
    before = Recommender.load(model).embeddings_["image"].vectors.copy()
    later = time.time() + 5
    (img / "0001.jpg").write_bytes((img / "0001.jpg").read_bytes())  # re-synced, same photo
    draw("blue_stripes", shift=3).save(img / "0004.jpg", quality=95)  # a new photo
    for pid in ("0001", "0004"):
        os.utime(img / f"{pid}.jpg", (later, later))
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(tmp_path / "catalog.csv"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    cap = capsys.readouterr()
    assert "1 changed since the model last encoded them (photos 1): re-encoded" in cap.err
    assert "; 1 photo files written since the model encoded them hold the same photo" in cap.err
    assert "no new product; 1 changed products re-encoded" in cap.out
    after = Recommender.load(model)
    np.testing.assert_array_equal(after.embeddings_["image"].vectors[:3], before[:3])
    assert not np.allclose(after.embeddings_["image"].vectors[3], before[3])
    want = after.embeddings_["image"].vectors[1]  # 0004 now looks like 0002's stripes
    got = after.embeddings_["image"].vectors[3]
    assert got @ want / np.linalg.norm(got) / np.linalg.norm(want) > \
        before[3] @ want / np.linalg.norm(before[3]) / np.linalg.norm(want)
    updates = json.loads((model / "manifest.json").read_text())["updates"]
    assert updates[-1]["updated_products"] == 1
    # again: both files still look newer than the model (future times), but the first add
    # stamped them (size and modification time as encoded): nothing is read again
    add = ["add", str(model), "--catalog", str(tmp_path / "catalog.csv"),
           "--cache-dir", str(tmp_path / "cache")]
    assert main(add) == 0
    cap = capsys.readouterr()
    assert "none changed" in cap.err and "photo files written since" not in cap.err
    assert "nothing was written" in cap.out
    # another photo copied in with an *older* time than the model's (cp -p, rsync -t): found
    draw("green_square", shift=1).save(img / "0002.jpg", quality=95)
    os.utime(img / "0002.jpg", (1e9 - 3600, 1e9 - 3600))
    assert main(add) == 0
    cap = capsys.readouterr()
    assert "1 changed since the model last encoded them (photos 1): re-encoded" in cap.err
    assert not np.allclose(Recommender.load(model).embeddings_["image"].vectors[1], before[1])
    # files touched, the same photos: read again, found the same; from VERIFIED_RECORD such
    # photos on the check is written (the stamps with it): the next add reads none
    monkeypatch.setattr("prodfusion.cli.add.VERIFIED_RECORD", 2)
    now = time.time()
    os.utime(img / "0001.jpg", (now, now))
    os.utime(img / "0004.jpg", (now, now))
    assert main(add) == 0
    assert "the check of 2 photo files recorded" in capsys.readouterr().out
    assert json.loads((model / "manifest.json").read_text())["updates"][-1][
        "photos_verified"] == 2
    assert main(add) == 0
    cap = capsys.readouterr()
    assert "none changed" in cap.err and "photo files written since" not in cap.err
    # a folder written before the stamps: a photo file counts as written anew when its time
    # is after the model's last encoding, as before
    m = json.loads((model / "manifest.json").read_text())
    assert m["files"].pop("photo_stamps") == "photo_stamps.npy"
    (model / "manifest.json").write_text(json.dumps(m))
    (model / "photo_stamps.npy").unlink()
    assert Recommender.load(model).photo_stamps_ is None
    for pid in ("0001", "0002", "0004"):
        os.utime(img / f"{pid}.jpg", (1e9, 1e9))
    os.utime(img / "0003.jpg", (later + 60, later + 60))
    assert main(add) == 0
    cap = capsys.readouterr()
    assert "none changed; 1 photo files written since the model encoded them hold the same " \
        "photo" in cap.err


def test_add_refuses_a_feed_whose_photo_paths_do_not_exist(tmp_path, tiny_clip_path, capsys):
    img = tmp_path / "img"
    img.mkdir()
    rows = ["id,title,image"]
    for i, kind in enumerate(["red_disk", "blue_stripes", "green_square"] * 2):
        draw(kind, shift=i).save(img / f"{i}.jpg", quality=95)
        rows.append(f"{i},Product {i},img/{i}.jpg")
    (tmp_path / "catalog.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    model = tmp_path / "model"
    assert main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "id",
                 "--text", "none", "--image", f"clip:{tiny_clip_path}", "--cache-dir", "none",
                 "--out", str(model)]) == 0
    feeds = tmp_path / "feeds"  # today's feed saved in another folder: relative paths break
    feeds.mkdir()
    (feeds / "feed.csv").write_text("\n".join(rows + ["9,Product 9,img/0.jpg"]) + "\n",
                                    encoding="utf-8")
    before = (model / "manifest.json").read_text()
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feeds / "feed.csv"),
                 "--cache-dir", "none"]) != 0
    err = capsys.readouterr().err
    assert "6 of 6 photo files it names for products the model has a photo of do not exist" \
        in err and "Check --image-root" in err
    assert (model / "manifest.json").read_text() == before
    assert main(["add", str(model), "--catalog", str(feeds / "feed.csv"), "--cache-dir",
                 "none", "--image-root", str(tmp_path)]) == 0
    assert "image   1/1" in capsys.readouterr().out


def test_add_records_the_new_paths_of_photos_moved_to_another_root(tmp_path, tiny_clip_path,
                                                                   capsys):
    """An image folder moved (`--image-root` elsewhere): the first add finds the photos the
    same and records their new paths; the next add compares nothing and writes nothing,
    even once the old folder is gone. Vectors and lists stay."""
    import shutil

    img = tmp_path / "img"
    img.mkdir()
    for i, kind in enumerate(["red_disk", "blue_stripes", "green_square"]):
        draw(kind, shift=i).save(img / f"{i}.jpg", quality=95)
    (tmp_path / "catalog.csv").write_text("id,title\n0,Red\n1,Blue\n2,Green\n", encoding="utf-8")
    model = tmp_path / "model"
    assert main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "id",
                 "--image-template", "{id}.jpg", "--image-root", str(img), "--text", "none",
                 "--image", f"clip:{tiny_clip_path}", "--cache-dir", "none",
                 "--out", str(model)]) == 0
    before = Recommender.load(model)
    moved = tmp_path / "disk2" / "img"
    shutil.copytree(img, moved)  # times kept, as rsync -a or mv leave them
    add = ["add", str(model), "--catalog", str(tmp_path / "catalog.csv"), "--image-root",
           str(moved), "--cache-dir", "none"]
    capsys.readouterr()
    assert main(add) == 0
    cap = capsys.readouterr()
    assert "none changed" in cap.err
    assert "3 unchanged photos are now read from the feed's paths" in cap.err
    assert "the new paths of 3 photos recorded" in cap.out
    after = Recommender.load(model)
    assert after.catalog.image_paths == [str(moved / f"{i}.jpg") for i in range(3)]
    np.testing.assert_array_equal(after.embeddings_["image"].vectors,
                                  before.embeddings_["image"].vectors)
    assert after.updated_ is None  # no list is stale: nothing was re-encoded
    shutil.rmtree(img)
    assert main(add) == 0
    cap = capsys.readouterr()
    assert "none changed" in cap.err and "now read from" not in cap.err
    assert "nothing was written" in cap.out
