"""Typed settings of the HTTP service, read from a TOML/YAML file or made for one model folder.

A configuration file (``.toml``, ``.yaml`` or ``.yml``)::

    [service]
    events = "events.sqlite3"          # SQLite file (relative to this file) or postgresql:// URL
    synchronous = "FULL"               # SQLite durability: FULL or NORMAL (see events.py)
    reload_interval_s = 2.0            # poll model folders for a new publication; 0 = never
    # images = "/data/images"          # image folder; default: common folder of catalog images
    # shop_url = "https://shop.example/p/{product_id}"   # target of the "go to shop" button
    # page_profile = "next_clicks"     # the web page's second row, ranked by that profile
    # root_path = "/recs"              # served behind a reverse proxy at this path prefix
    # cors_origins = ["https://www.shop.example"]   # shop pages that call the API from their JS

    [experiment]
    name = "fusion-vs-prod2vec"
    salt = "2024-06"                   # default: the name
    control = "baseline"               # default: the first variant

    [[experiment.variants]]
    name = "baseline"
    weight = 50
    model = "models/current"           # a model folder, or a symlink to one (atomic publishing)
    fusion = "intermediate"
    modalities = ["clicks"]            # the paper's baseline: Prod2Vec neighbours ...
    fallback = ["text"]                # ... and text neighbours where clicks cannot fill k
    paper = true                       # ... by raw cosines, whatever the model was tuned to

    [[experiment.variants]]
    name = "fusion"
    weight = 50
    model = "models/current"
    fusion = "intermediate"
    modalities = ["text", "image", "clicks"]

Relative paths are resolved against the file's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from prodfusion._checks import check_int, check_real
from prodfusion.data.storage import is_object_uri, path_or_uri
from prodfusion.errors import DataError, ParameterError, param_error
from prodfusion.service.experiments import ExperimentConfig, VariantConfig

__all__ = ["ServiceSettings", "load_settings", "DEFAULT_EVENTS"]

DEFAULT_EVENTS = "prodfusion-events.sqlite3"


@dataclass
class ServiceSettings:
    """Everything :func:`prodfusion.service.app.create_app` needs.

    Parameters
    ----------
    experiment : ExperimentConfig
        The experiment served (a single-variant "default" experiment for one model folder).
    events : str
        SQLite file path or ``postgresql://`` URL of the event store.
    synchronous : {"FULL", "NORMAL"}
        SQLite durability (FULL: survives power loss; NORMAL: survives a process crash only).
    busy_timeout_s : float
        SQLite lock wait before a write fails with 503.
    images : Path or None
        Folder ``/images/{id}`` may serve from; None: the deepest folder holding every
        catalog image (refused if that is the file-system root).
    reload_interval_s : float
        How often model folders are checked for a new publication (0 disables hot reload).
    max_body_bytes : int
        Larger request bodies get 413.
    default_k, max_k : int
        Default and maximum number of recommendations (``k`` outside [1, max_k] gets 422).
    cache_size : int
        Recommendation lists kept per loaded model and worker, least recently used dropped
        (each holds one rendered response body; 0 disables). A model's lists never change, so popular
        products are answered without searching; a hot reload starts an empty cache.
    max_batch : int
        Most events in one POST.
    cookie_name : str
        Cookie holding the anonymous visitor id.
    cookie_secure : bool
        Set the ``Secure`` flag on the cookie (behind HTTPS).
    shop_url : str or None
        Template of the merchant page, ``{product_id}`` substituted; the web page's "go to shop".
    title : str
        Name shown on the web page.
    page_profile : str or None
        A weighting profile of the served models (``prodfusion tune --profile NAME``, e.g.
        ``next_clicks``) by which the web page ranks a second row under the similar products
        ("visitors also click"), through ``/v1/similar/{id}?profile=NAME``; each row's views
        and clicks are logged with its own ``request_id``. Every variant must serve it: a
        ``paper`` variant, or a model without the profile, stops the start-up (both arms of an
        experiment show the same page). None: one row.
    root_path : str
        The path prefix under which a reverse proxy serves the service (``"/recs"`` for
        ``https://shop.example/recs/``, the proxy stripping the prefix before it forwards, as
        nginx's ``location /recs/ { proxy_pass http://127.0.0.1:8000/; }`` does): the page's
        links and scripts, the API's ``image_url`` and ``/docs`` carry it (uvicorn's
        ``root_path``). ``""`` (default): served at the host's root.
    cors_origins : tuple of str
        Origins (``https://www.shop.example``: scheme, host and port) whose pages may call
        the API from their own scripts (CORS: ``/v1/similar`` and ``/v1/products`` read,
        ``/v1/events`` posted, the visitor cookie sent along); ``("*",)`` lets any origin read
        and post without cookies (such a caller names the ``visitor``). Empty (default): only
        the service's own page, as browsers allow by themselves.
    lists : Path, str or None
        Precomputed lists (``prodfusion export``) for every variant without its own ``lists``
        (a file, or an object in a bucket: ``"s3://shop-data/lists.parquet"``);
        answered from the file when possible, by live search otherwise
        (:mod:`prodfusion.service.lists`).
    lists_layout : {"arrow", "sqlite", "memory"}
        Serving copy of the lists file (memory-mapped Arrow by default; see
        ``docs/benchmarks/export.md``).
    body_timeout_s : float
        A request body (``POST /v1/events``) must arrive completely within this many seconds,
        else 408 and the connection is closed (a stuck or slow client cannot hold a worker).
    keepalive_timeout_s : float
        Idle keep-alive connections are closed after this many seconds (uvicorn
        ``timeout_keep_alive``).
    max_connections : int
        Connections (and requests in progress) per worker process; beyond it new requests get
        503 at once (uvicorn ``limit_concurrency``).
    ab_secret : str or None
        Key of the HMAC that signs every ``request_id`` (see docs/service.md, "Attribution").
        None: a random key kept in the event store (``pf_secrets``), shared by every worker
        and kept across restarts. Prefer the ``PRODFUSION_AB_SECRET`` environment variable or
        ``ab_secret_file`` over writing it into the file.
    attribution_window_s : float
        Clicks and jumps that arrive later than this after their list was served are
        quarantined (stored, flagged, excluded from reports). Counted from the start of
        the impression period the list was served in.
    impression_period_s : float
        A visitor who loads the same list again within one period (a reload) gets the same
        ``request_id``: one impression. 0: every answer is a new impression.
    """

    experiment: ExperimentConfig
    events: str = DEFAULT_EVENTS
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_s: float = 5.0
    images: Path | None = None
    reload_interval_s: float = 2.0
    max_body_bytes: int = 1_000_000
    default_k: int = 15
    max_k: int = 100
    cache_size: int = 20_000
    max_batch: int = 1000
    cookie_name: str = "pf_visitor"
    cookie_secure: bool = False
    shop_url: str | None = None
    title: str = "prodfusion"
    page_profile: str | None = None
    root_path: str = ""
    cors_origins: tuple[str, ...] = ()
    lists: Path | str | None = None
    lists_layout: Literal["arrow", "sqlite", "memory"] = "arrow"
    body_timeout_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    max_connections: int = 1000
    ab_secret: str | None = field(default=None, repr=False)
    attribution_window_s: float = 24 * 3600.0
    impression_period_s: float = 1800.0

    def __post_init__(self) -> None:
        where = "ServiceSettings()"
        if self.synchronous not in ("FULL", "NORMAL"):
            raise param_error("synchronous", where, "'FULL' or 'NORMAL'", self.synchronous)
        for name in ("busy_timeout_s", "reload_interval_s", "body_timeout_s",
                     "keepalive_timeout_s", "attribution_window_s", "impression_period_s"):
            v = getattr(self, name)
            check_real(v, name, where, low=0, expected="a finite number >= 0")
        for name, lo in (("max_body_bytes", 1024), ("default_k", 1), ("max_k", 1), ("max_batch", 1),
                         ("cache_size", 0), ("max_connections", 1)):
            v = getattr(self, name)
            check_int(v, name, where, low=lo)
        if not 1 <= self.default_k <= self.max_k:
            raise param_error("default_k", where, f"an int in [1, max_k={self.max_k}]", self.default_k)
        if self.shop_url is not None and "{product_id}" not in self.shop_url:
            raise param_error("shop_url", where, "a URL template containing '{product_id}'",
                              self.shop_url)
        if self.page_profile is not None:
            from prodfusion.fusion.weighting import check_profile_name

            check_profile_name(self.page_profile, where, "page_profile")
        self.root_path = _root_path(self.root_path, where)
        self.cors_origins = _origins(self.cors_origins, where)
        if self.images is not None:
            self.images = Path(self.images)
        if self.lists is not None:
            self.lists = path_or_uri(self.lists)
        if self.lists_layout not in ("arrow", "sqlite", "memory"):
            raise param_error("lists_layout", where, "'arrow', 'sqlite' or 'memory'",
                              self.lists_layout)
        if self.ab_secret is not None and (not isinstance(self.ab_secret, str)
                                           or len(self.ab_secret) < 16):
            raise param_error("ab_secret", where, "a string of at least 16 characters (or None)",
                              "<hidden>")
        if self.body_timeout_s <= 0 or self.attribution_window_s <= 0:
            raise param_error("body_timeout_s/attribution_window_s", where, "> 0",
                              (self.body_timeout_s, self.attribution_window_s))

    @classmethod
    def for_model(cls, model_dir: str | os.PathLike, **overrides: Any) -> ServiceSettings:
        """Serve one model folder as the single variant ``default`` of experiment ``default``."""
        exp = ExperimentConfig("default", variants=(
            VariantConfig("default", 1.0, path_or_uri(model_dir)),))
        if "ab_secret" not in overrides and os.environ.get(SECRET_ENV):
            overrides["ab_secret"] = os.environ[SECRET_ENV]
        return cls(experiment=exp, **overrides)


def _root_path(value, where: str) -> str:
    """``"/recs/"`` → ``"/recs"``; a path of plain URL characters beginning with ``/``.

    >>> _root_path("/recs/", "f()"), _root_path("", "f()"), _root_path("/", "f()")
    ('/recs', '', '')
    """
    import re

    if not isinstance(value, str) or not re.fullmatch(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)*",
                                                       value.rstrip("/") or ""):
        raise param_error("root_path", where, "'' or a URL path beginning with '/' (e.g. "
                          "'/recs'), of URL characters without quotes, spaces or '?'", value)
    return value.rstrip("/")


def _origins(value, where: str) -> tuple[str, ...]:
    """Origins as browsers send them: ``scheme://host[:port]``, no path, no trailing ``/``
    (``"https://shop.example/"`` is taken as ``"https://shop.example"``); or ``"*"`` alone.

    >>> _origins(["https://www.shop.example/", "http://localhost:3000"], "f()")
    ('https://www.shop.example', 'http://localhost:3000')
    """
    import re

    if isinstance(value, str):
        value = [value]
    expected = ("a list of origins such as 'https://www.shop.example' (scheme, host and "
                "port, no path), or ['*']")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise param_error("cors_origins", where, expected, value)
    out = tuple(v.rstrip("/") if v != "*" else v for v in value)
    for v in out:
        if v != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", v):
            raise param_error("cors_origins", where, expected, v)
    if "*" in out and len(out) > 1:
        raise param_error("cors_origins", where, "['*'] alone, or origins without '*'", list(out))
    return out


_SERVICE_KEYS = ({f.name for f in fields(ServiceSettings)} - {"experiment"}) | {"ab_secret_file"}
#: Environment variable holding the A/B secret (read by :func:`load_settings` only).
SECRET_ENV = "PRODFUSION_AB_SECRET"
_EXPERIMENT_KEYS = {"name", "salt", "control", "variants"}
_VARIANT_KEYS = {"name", "weight", "model", "fusion", "modalities", "lists", "fallback",
                 "profile", "paper"}


def _read_config(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the service configuration ({exc}).") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw.decode("utf-8"))
        else:
            raise DataError(
                f"{path}: unknown configuration format {suffix!r}; use .toml, .yaml or .yml "
                "(or pass a model folder)."
            )
    except DataError:
        raise
    except Exception as exc:  # parse errors of either library, or bad UTF-8
        raise DataError(f"{path}: cannot parse the configuration: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: the configuration must be a mapping with [service] and [experiment].")
    return data


def _unknown(path: Path, section: str, got: dict, allowed: set[str]) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        raise DataError(
            f"{path}: unknown key(s) {extra} in {section}; allowed: {sorted(allowed)}."
        )


def load_settings(path: str | os.PathLike, **overrides: Any) -> ServiceSettings:
    """Settings from a configuration file, or for a model folder (see :meth:`ServiceSettings.for_model`).

    ``overrides`` (e.g. ``events=…``) win over the file.

    Raises
    ------
    DataError
        Unreadable file, unknown keys (named with the section), or missing experiment.
    ParameterError
        A value of the wrong type or range (named).
    """
    if is_object_uri(path):  # a model folder in a bucket (a configuration file is local)
        return ServiceSettings.for_model(path, **overrides)
    p = Path(path)
    if p.is_dir():
        return ServiceSettings.for_model(p, **overrides)
    if not p.exists():
        raise DataError(f"{p}: no such configuration file or model folder.")
    data = _read_config(p)
    base = p.resolve().parent
    _unknown(p, "the top level", data, {"service", "experiment"})
    service = dict(data.get("service") or {})
    _unknown(p, "[service]", service, _SERVICE_KEYS)
    exp = data.get("experiment")
    if not isinstance(exp, dict):
        raise DataError(f"{p}: missing [experiment] section with a name and [[experiment.variants]].")
    _unknown(p, "[experiment]", exp, _EXPERIMENT_KEYS)
    variants = []
    raw_variants = exp.get("variants") or []
    if not isinstance(raw_variants, list):
        raise DataError(f"{p}: experiment.variants must be a list of tables.")
    for i, v in enumerate(raw_variants):
        if not isinstance(v, dict):
            raise DataError(f"{p}: experiment.variants[{i}] must be a table.")
        _unknown(p, f"experiment.variants[{i}]", v, _VARIANT_KEYS)
        for key in ("name", "model"):
            if key not in v:
                raise DataError(f"{p}: experiment.variants[{i}] has no {key!r}.")
        model = path_or_uri(v["model"]) if isinstance(v["model"], str) else Path(v["model"])
        lists = path_or_uri(v["lists"]) if v.get("lists") else None
        try:
            variant = VariantConfig(
                name=v["name"], weight=v.get("weight", 1.0),
                model=model if isinstance(model, str) or model.is_absolute() else base / model,
                fusion=v.get("fusion"),
                modalities=tuple(v["modalities"]) if v.get("modalities") is not None else None,
                lists=lists if lists is None or isinstance(lists, str) or lists.is_absolute()
                else base / lists,
                fallback=tuple(v["fallback"]) if v.get("fallback") is not None else None,
                profile=v.get("profile"),
                paper=v.get("paper", False),
            )
        except ParameterError as exc:  # name the file and the table, as unknown keys are
            raise DataError(f"{p}: experiment.variants[{i}]: {exc}") from exc
        variants.append(variant)
    if "name" not in exp:
        raise DataError(f"{p}: [experiment] has no 'name'.")
    experiment = ExperimentConfig(
        name=exp["name"], variants=tuple(variants), salt=exp.get("salt"), control=exp.get("control")
    )
    events = service.get("events")
    if isinstance(events, str) and "://" not in events and not Path(events).is_absolute():
        service["events"] = str(base / events)
    lists = service.get("lists")
    if isinstance(lists, str) and not is_object_uri(lists):
        service["lists"] = Path(lists) if Path(lists).is_absolute() else base / lists
    images = service.get("images")
    if isinstance(images, str):
        service["images"] = Path(images) if Path(images).is_absolute() else base / images
    _resolve_secret(p, service, base)
    settings = ServiceSettings(experiment=experiment, **service)
    return replace(settings, **overrides) if overrides else settings


def _resolve_secret(path: Path, service: dict, base: Path) -> None:
    """``ab_secret`` from ``ab_secret_file`` (relative to the config) or the environment."""
    secret_file = service.pop("ab_secret_file", None)
    if secret_file is not None:
        f = Path(secret_file) if Path(secret_file).is_absolute() else base / secret_file
        try:
            service["ab_secret"] = f.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read ab_secret_file {str(f)!r} ({exc}).") from exc
    if service.get("ab_secret") is None and os.environ.get(SECRET_ENV):
        service["ab_secret"] = os.environ[SECRET_ENV]
