"""The review web app: Starlette routes over one Session, pages from Jinja2 templates.

Pages (every address carries ``?token=``): ``/`` (overview), ``/patients`` ▸
``/patients/{p}`` ▸ ``.../studies/{s}`` ▸ ``.../series/{r}`` ▸ ``/instances/{file_id}``
(thumbnail with its zones, findings, planned changes, decisions), ``/findings``,
``/plan``, ``/decisions``, ``/deface`` (every series of the ``deface`` table; a
series page shows its row and the before/after side views ``.../deface/before.png``). Forms ``POST /decide`` (approve, exclude after a
confirmation page) and ``POST /zones`` (a device's redaction zones) change the
store through :mod:`gantry.review._decisions`. Addresses use ordinals and file
ids, never a patient's value, so the server's logs hold none.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import polars as pl

from gantry._deps import require
from gantry.errors import ConfigError, GantryError
from gantry.review._decisions import (
    EXCLUDE_REASONS,
    approve,
    decisions,
    device_zones,
    exclude,
    latest_decisions,
    set_device_zones,
)
from gantry.review._deface import deface_pictures, deface_table
from gantry.review._guard import TokenGuard
from gantry.review._thumbs import ZONE_SOURCES, instance_zones, render_png

if TYPE_CHECKING:
    from gantry.session import Session

__all__ = ["ReviewState", "create_app"]

_EXTRA = "review"
_LIMIT = 500  # rows a table page shows; the page says when it cuts


@dataclass
class ReviewState:
    """What the app serves: one open Session (used under ``lock``), the token, the reviewer."""

    session: Session
    token: str
    reviewer: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    _audit: tuple[str, pl.DataFrame] | None = None
    _pictures: dict[tuple[str, Any], tuple[bytes | None, bytes | None]] = field(
        default_factory=dict
    )

    def url(self, path: str, **params: Any) -> str:
        """``path`` with the token (and ``params``) in its query string."""
        return f"{path}?{urlencode({'token': self.token, **params})}"

    def findings(self) -> pl.DataFrame:
        """The audit's findings under the stored config (cached per config)."""
        from gantry.plan._coverage import config_hash

        cfg = self.session.stored_config()
        key = config_hash(cfg) if cfg is not None else ""
        if self._audit is None or self._audit[0] != key:
            frame = self.session.audit(cfg).to_polars()
            self._audit = (key, frame.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String)))
        return self._audit[1]

    def pictures(self, uid: str, computed_at: Any) -> tuple[bytes | None, bytes | None]:
        """A series' defacing side views (PNG), kept while its ``deface`` row is the same."""
        key = (uid, computed_at)
        if key not in self._pictures:
            if len(self._pictures) >= 8:  # a few series' pictures, not the whole table
                self._pictures.pop(next(iter(self._pictures)))
            self._pictures[key] = deface_pictures(self.session, uid)
        return self._pictures[key]


def create_app(
    session: Session,
    *,
    token: str | None = None,
    reviewer: str = "reviewer",
    port: int | None = None,
) -> Any:
    """The review app (an ASGI app) over ``session``, guarded by ``token``.

    Needs ``gantry[review]`` (Starlette, python-multipart). ``port`` pins the
    ``Host`` the guard accepts (None: any loopback port, for in-process tests).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from starlette.testclient import TestClient
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "d" / "a.dcm")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     client = TestClient(create_app(s, token="t" * 24), base_url="http://127.0.0.1")
    ...     print(client.get("/").status_code, client.get("/?token=" + "t" * 24).status_code)
    403 200
    """
    require("starlette", extra=_EXTRA)
    require("python_multipart", extra=_EXTRA)
    from jinja2 import Environment, PackageLoader, select_autoescape
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    state = ReviewState(session, token or secrets.token_urlsafe(24), reviewer)
    env = Environment(
        loader=PackageLoader("gantry.review", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["url"] = state.url
    env.globals["reasons"] = EXCLUDE_REASONS
    env.globals["zone_sources"] = ZONE_SOURCES
    env.globals["token"] = state.token
    env.globals["reviewer"] = reviewer

    def page(name: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
        done = request.query_params.get("done")
        html = env.get_template(name).render(done=done, **ctx)
        return HTMLResponse(html, status_code=status)

    def locked(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            with state.lock:
                try:
                    return fn(request)
                except GantryError as exc:
                    return page("error.html.j2", request, 400, message=str(exc))
                except (KeyError, IndexError, ValueError):
                    return page("error.html.j2", request, 404, message="no such page")

        return run

    s = session

    def nodes(request: Request) -> list[Any]:
        """The patient, study, series named by the path's ordinals (as far as given)."""
        p = request.path_params
        out: list[Any] = [s.patients[int(p["p"])]]
        if "s" in p:
            out.append(out[-1].studies[int(p["s"])])
        if "r" in p:
            out.append(out[-1].series[int(p["r"])])
        return out

    def home(request: Request) -> Response:
        counts = s.sql(
            "SELECT count(*) AS instances, count(DISTINCT PatientID) AS patients, "
            "count(DISTINCT StudyInstanceUID) AS studies, "
            "count(DISTINCT SeriesInstanceUID) AS series FROM instances"
        ).row(0, named=True)
        has_plan = "plan" in s.tables()
        plan_rows = s.sql("SELECT count(*) FROM plan").item() if has_plan else None
        findings = state.findings()
        return page(
            "home.html.j2",
            request,
            counts=counts,
            plan_rows=plan_rows,
            findings=findings.height,
            unresolved=int((~findings["resolved"]).sum()),
            n_decisions=decisions(s).height,
            defaced=s.sql("SELECT count(*) FROM deface").item() if "deface" in s.tables() else 0,
        )

    def patients(request: Request) -> Response:
        rows = s.patients.to_polars().with_row_index("n").head(_LIMIT)
        return page("patients.html.j2", request, rows=rows.to_dicts(), total=len(s.patients))

    def patient(request: Request) -> Response:
        (pat,) = nodes(request)
        rows = pat.studies.to_polars().with_row_index("n").to_dicts()
        p = int(request.path_params["p"])
        return page("patient.html.j2", request, p=p, patient=pat, rows=rows)

    def study(request: Request) -> Response:
        pat, stu = nodes(request)
        rows = stu.series.to_polars().with_row_index("n").to_dicts()
        return page(
            "study.html.j2", request, **request.path_params, patient=pat, study=stu, rows=rows
        )

    def series(request: Request) -> Response:
        pat, stu, ser = nodes(request)
        latest = latest_decisions(s)
        insts = [
            {"file_id": int(i.file_id), "number": i.get("InstanceNumber"), "excluded": i.excluded,
             "decision": latest.get(int(i.file_id)), "pixels": _has_pixels(i)}
            for i in ser.instances[:_LIMIT]
        ]  # fmt: skip
        deface = series_deface(str(ser.key))
        return page(
            "series.html.j2", request, **request.path_params, patient=pat, study=stu,
            series=ser, instances=insts, total=len(ser.instances), deface=deface,
        )  # fmt: skip

    def series_deface(uid: str) -> dict[str, Any] | None:
        """The series' ``deface`` row, and which pictures it has."""
        rows = deface_table(s, series=uid)
        if rows.is_empty():
            return None
        row = rows.row(-1, named=True)
        before, after = state.pictures(uid, row["computed_at"])
        return row | {"before": before is not None, "after": after is not None}

    def deface_png(request: Request) -> Response:
        *_, ser = nodes(request)
        which = request.path_params["which"]
        row = series_deface(str(ser.key))
        if row is None or which not in ("before", "after"):
            return Response(b"", status_code=404)
        before, after = state.pictures(str(ser.key), row["computed_at"])
        png = before if which == "before" else after
        if png is None:
            return Response(b"", status_code=404)
        return Response(png, media_type="image/png")

    def deface_page(request: Request) -> Response:
        rows = deface_table(s)
        return page("deface.html.j2", request, rows=rows.head(_LIMIT).to_dicts(), total=rows.height)

    def instance(request: Request) -> Response:
        fid = int(request.path_params["fid"])
        inst = s.instances(pl.col("file_id") == fid)[0]
        rows, cols = inst.get("Rows"), inst.get("Columns")
        plan = (
            s.sql(
                "SELECT p.path, p.keyword, p.action, e.value AS old_value, p.new_value, p.rule "
                "FROM plan p LEFT JOIN elements e ON e.file_id = p.file_id AND e.path = p.path "
                "WHERE p.file_id = ? ORDER BY p.path",
                [fid],
            ).to_dicts()
            if "plan" in s.tables()
            else None
        )
        found = state.findings().filter(pl.col("file_id") == fid).sort("resolved").to_dicts()
        machine, zones = device_zones(s, fid)
        return page(
            "instance.html.j2", request, fid=fid, inst=inst, rows=rows, cols=cols, plan=plan,
            pixels=_has_pixels(inst),
            findings=found, zones=instance_zones(s, fid), machine=machine, device_zones=zones,
            decision=latest_decisions(s).get(fid), back=_series_path(s, inst),
        )  # fmt: skip

    def thumb(request: Request) -> Response:
        fid = int(request.path_params["fid"])
        if not _has_pixels(s.instances(pl.col("file_id") == fid)[0]):
            return Response(b"", status_code=404)
        png, _, _ = render_png(s, fid)
        return Response(png, media_type="image/png")

    def findings_page(request: Request) -> Response:
        f = state.findings().sort("resolved", "severity", "file_id")
        summary = (
            f.group_by("rule", "severity")
            .agg(pl.len().alias("findings"), (~pl.col("resolved")).sum().alias("unresolved"))
            .sort("unresolved", "findings", descending=True)
        )
        return page(
            "findings.html.j2", request, summary=summary.to_dicts(),
            rows=f.head(_LIMIT).to_dicts(), total=f.height,
        )  # fmt: skip

    def plan_page(request: Request) -> Response:
        if "plan" not in s.tables():
            return page("plan.html.j2", request, rows=None)
        rows = s.sql(
            "SELECT action, rule, count(*) AS rows, count(DISTINCT file_id) AS instances "
            "FROM plan GROUP BY 1, 2 ORDER BY rows DESC"
        ).to_dicts()
        return page("plan.html.j2", request, rows=rows)

    def decisions_page(request: Request) -> Response:
        rows = decisions(s).reverse().to_dicts()
        return page("decisions.html.j2", request, rows=rows)

    def asset(name: str, media_type: str) -> Callable[[Request], Response]:
        text = (Path(__file__).parent / "templates" / name).read_text("utf-8")
        return lambda request: Response(text, media_type=media_type)

    async def decide(request: Request) -> Response:
        form = await request.form()
        return await _threaded(
            request, lambda: _decide(request, {k: str(v) for k, v in form.items()})
        )

    def _decide(request: Request, form: dict[str, str]) -> Response:
        _check_form_token(form)
        action, level = form.get("action", ""), form.get("level", "instance")
        if action not in ("approve", "exclude"):
            raise ConfigError("action", expected="'approve' or 'exclude'", got=action)
        if level == "series":
            parts = [int(form[k]) for k in ("p", "s", "r")]
            target = s.patients[parts[0]].studies[parts[1]].series[parts[2]]
            ids = [int(i) for i in target.file_ids]
            back = "/patients/{}/studies/{}/series/{}".format(*parts)
        elif level == "instance":
            ids = [int(form["file_id"])]
            back = f"/instances/{ids[0]}"
        else:
            raise ConfigError("level", expected="'instance' or 'series'", got=level)
        if action == "exclude":
            reason = form.get("reason", "")
            if reason not in EXCLUDE_REASONS:
                raise ConfigError(
                    "reason", expected=f"one of {sorted(EXCLUDE_REASONS)}", got=reason
                )
            if form.get("confirmed") != "yes":
                return page(
                    "confirm.html.j2", request, form=form, n=len(ids), back=back,
                    reason_text=EXCLUDE_REASONS[reason], level=level,
                )  # fmt: skip
            n = exclude(s, ids, reason=reason, reviewer=state.reviewer, level=level)
        else:
            n = approve(s, ids, reviewer=state.reviewer, level=level)
        return RedirectResponse(state.url(back, done=f"{action}:{n}"), status_code=303)

    async def zones(request: Request) -> Response:
        form = await request.form()
        return await _threaded(
            request, lambda: _zones(request, {k: str(v) for k, v in form.items()})
        )

    def _zones(request: Request, form: dict[str, str]) -> Response:
        _check_form_token(form)
        fid = int(form["file_id"])
        kept: list[list[int]] = []
        i = 0
        while f"r1_{i}" in form:
            if form.get(f"remove_{i}") != "yes":
                kept.append([_int(form, f"{k}_{i}") for k in ("r1", "r2", "c1", "c2")])
            i += 1
        new = [form.get(k, "").strip() for k in ("r1", "r2", "c1", "c2")]
        if any(new):
            kept.append([_int(form, k) for k in ("r1", "r2", "c1", "c2")])
        set_device_zones(s, fid, kept, reviewer=state.reviewer)
        return RedirectResponse(state.url(f"/instances/{fid}", done=f"zones:{len(kept)}"), 303)

    def _check_form_token(form: dict[str, str]) -> None:
        if not secrets.compare_digest(form.get("token", "").encode(), state.token.encode()):
            raise ConfigError("token", expected="the session's token in the form", got="another")

    async def _threaded(request: Request, fn: Callable[[], Response]) -> Response:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(locked(lambda _r: fn()), request)

    routes = [
        Route("/", locked(home)),
        Route("/patients", locked(patients)),
        Route("/patients/{p:int}", locked(patient)),
        Route("/patients/{p:int}/studies/{s:int}", locked(study)),
        Route("/patients/{p:int}/studies/{s:int}/series/{r:int}", locked(series)),
        Route(
            "/patients/{p:int}/studies/{s:int}/series/{r:int}/deface/{which}.png",
            locked(deface_png),
        ),
        Route("/instances/{fid}", locked(instance)),
        Route("/instances/{fid}/thumb.png", locked(thumb)),
        Route("/findings", locked(findings_page)),
        Route("/plan", locked(plan_page)),
        Route("/decisions", locked(decisions_page)),
        Route("/deface", locked(deface_page)),
        Route("/review.css", asset("review.css", "text/css")),
        Route("/review.js", asset("review.js", "text/javascript")),
        Route("/decide", decide, methods=["POST"]),
        Route("/zones", zones, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.review = state
    return TokenGuard(app, token=state.token, port=port)


def _int(form: dict[str, str], key: str) -> int:
    text = form.get(key, "").strip()
    try:
        return int(text)
    except ValueError:
        raise ConfigError(key, expected="a whole number of pixels", got=text) from None


def _has_pixels(inst: Any) -> bool:
    """Whether the instance has an image to show (Rows and Columns, not an SR or a PDF)."""
    return bool(inst.get("Rows")) and bool(inst.get("Columns"))


def _series_path(session: Session, inst: Any) -> str | None:
    """``/patients/p/studies/s/series/r`` of an instance (ordinals in the collections)."""
    ser = inst.series
    stu = ser.study
    pat = stu.patient
    p = session.patients.keys().index(pat.key)
    s_ = pat.studies.keys().index(stu.key)
    r = stu.series.keys().index(ser.key)
    return f"/patients/{p}/studies/{s_}/series/{r}"
