"""Verifiable request ids: which events may count in an A/B report.

Every recommendation list the service answers carries a ``request_id`` that the server can
verify later without a database lookup::

    request_id = NONCE "." ISSUED "." SIG
    SIG        = HMAC-SHA256(secret, "r1|" NONCE "|" ISSUED "|" experiment "|" variant "|"
                             visitor "|" product_id)[:32 hex]

and one signature per recommended product, ``target_sigs[i]`` =
``HMAC-SHA256(secret, "t1|" request_id "|" rank "|" target_id)[:16 hex]``, which a click
returns as ``target_sig``.

Impressions and reloads
-----------------------
``NONCE`` is derived (HMAC) from the visitor, variant, product, ``k``, the filters and the
*impression period* ``floor(now / period_s)`` (``impression_period_s``, default 1,800 s), and
``ISSUED`` is the start of that period. So a visitor who reloads a product page within the
period gets the *same* request id again, and the report counts one impression per
(visitor, request id): reloads do not inflate the views. ``impression_period_s = 0`` makes
every answer a new impression (random nonce, issued now).

Rules (:meth:`Attribution.check`); an event that breaks one is **quarantined**: stored with
``status`` set to the reason, counted in ``/metrics`` and in the report's ``excluded``, and
left out of every rate:

``unverified``
    the request id was not issued by this server (malformed, forged, another secret) for this
    visitor and product;
``variant_mismatch``
    it was issued for this visitor and product, but for another variant than the one the
    visitor is assigned to now (the allocation changed, or the client altered it);
``target_not_served``
    a click whose ``target_id`` at ``rank`` is not what that list showed (no or a wrong
    ``target_sig``);
``late``
    the event arrived more than ``attribution_window_s`` after ``ISSUED`` (or claims a future
    issue time).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Sequence

__all__ = ["Attribution", "REASONS", "make_attribution"]

REASONS = ("unverified", "variant_mismatch", "target_not_served", "late")
_SKEW_S = 300.0  # clock skew tolerated between workers for "issued in the future"


class Attribution:
    """Issue and verify request ids of one experiment.

    Parameters
    ----------
    secret : bytes
        The HMAC key (:class:`ServiceSettings` ``ab_secret``, or the event store's).
    experiment : str
    window_s : float
        Attribution window: events later than this after the issue time are ``late``.
    period_s : float
        Impression period (reloads within it share a request id); 0: every answer is new.

    Examples
    --------
    >>> a = Attribution(b"k" * 32, "exp", window_s=3600, period_s=1800)
    >>> rid = a.issue("v1", "fusion", "0001", params="15", now=1_000_000.0)
    >>> rid == a.issue("v1", "fusion", "0001", params="15", now=1_000_100.0)   # a reload
    True
    >>> sigs = a.target_sigs(rid, ["0005", "0009"])
    >>> a.check(rid, "click", "v1", "fusion", "0001", ["fusion", "baseline"], now=1_000_200.0,
    ...         target_id="0009", rank=2, target_sig=sigs[1])
    'ok'
    >>> a.check(rid, "click", "v1", "fusion", "0001", ["fusion", "baseline"], now=1_000_200.0,
    ...         target_id="0042", rank=2, target_sig=sigs[1])
    'target_not_served'
    >>> a.check(rid, "view", "v2", "fusion", "0001", ["fusion"], now=1_000_200.0)
    'unverified'
    """

    def __init__(self, secret: bytes, experiment: str, *, window_s: float,
                 period_s: float = 1800.0) -> None:
        if not secret:
            raise ValueError("Attribution needs a non-empty secret")
        self._key = bytes(secret)
        self.experiment = experiment
        self.window_s = float(window_s)
        self.period_s = float(period_s)

    def _mac(self, msg: str, n: int) -> str:
        return hmac.new(self._key, msg.encode("utf-8"), hashlib.sha256).hexdigest()[:n]

    def _sig(self, nonce: str, issued: str, variant: str, visitor: str, product_id: str) -> str:
        return self._mac(f"r1|{nonce}|{issued}|{self.experiment}|{variant}|{visitor}|{product_id}",
                         32)

    def issue(self, visitor: str, variant: str, product_id: str, *, params: str = "",
              now: float | None = None) -> str:
        """A request id for the list ``variant`` shows ``visitor`` on ``product_id``'s page
        (``params``: k and filters, so different lists get different ids)."""
        now = time.time() if now is None else now
        if self.period_s > 0:
            period = int(now // self.period_s)
            issued = str(int(period * self.period_s))
            nonce = self._mac(f"n1|{visitor}|{variant}|{product_id}|{params}|{period}", 16)
        else:
            issued = str(int(now))
            nonce = os.urandom(8).hex()
        return f"{nonce}.{issued}.{self._sig(nonce, issued, variant, visitor, product_id)}"

    def target_sig(self, request_id: str, rank: int, target_id: str) -> str:
        """The signature a click on ``target_id`` shown at ``rank`` sends as ``target_sig``."""
        return self._mac(f"t1|{request_id}|{rank}|{target_id}", 16)

    def target_sigs(self, request_id: str, targets: Sequence[str]) -> list[str]:
        """One signature per recommended product (rank = position + 1)."""
        return [self.target_sig(request_id, rank, t) for rank, t in enumerate(targets, start=1)]

    def check(self, request_id: str, type: str, visitor: str, variant: str, product_id: str,
              variants: Sequence[str], *, now: float | None = None, target_id: str | None = None,
              rank: int | None = None, target_sig: str | None = None) -> str:
        """``"ok"`` or the reason (one of :data:`REASONS`) an event is quarantined."""
        now = time.time() if now is None else now
        parts = request_id.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
            return "unverified"
        nonce, issued, sig = parts
        if not hmac.compare_digest(sig, self._sig(nonce, issued, variant, visitor, product_id)):
            for other in variants:
                if other != variant and hmac.compare_digest(
                        sig, self._sig(nonce, issued, other, visitor, product_id)):
                    return "variant_mismatch"
            return "unverified"
        age = now - int(issued)
        if age > self.window_s or age < -_SKEW_S:
            return "late"
        if type == "click":
            want = self.target_sig(request_id, rank, target_id)
            if not target_sig or not hmac.compare_digest(target_sig, want):
                return "target_not_served"
        return "ok"


def make_attribution(settings, store) -> Attribution:
    """The :class:`Attribution` of a service: ``settings.ab_secret``, else a random secret
    kept in the event store (``pf_secrets``), the same for every worker and restart."""
    secret = settings.ab_secret or store.secret("ab_secret", lambda: os.urandom(32).hex())
    return Attribution(secret.encode("utf-8"), settings.experiment.name,
                       window_s=settings.attribution_window_s,
                       period_s=settings.impression_period_s)
