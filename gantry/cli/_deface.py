"""The ``deface`` verb: fit the face cut of head CT/MR series (table ``deface``)."""

from __future__ import annotations

from pathlib import Path

import click

from gantry.cli._app import cli, db_option, detail, problem, run_guarded, summary


@cli.command("deface")
@db_option
@click.option(
    "--series",
    "series",
    multiple=True,
    required=True,
    help="SeriesInstanceUID of a head CT/MR series (repeat for several).",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 50),
    default=4.0,
    show_default=True,
    help="Distance (mm) the cut keeps from the brain.",
)
@click.option("--refit", is_flag=True, help="Fit again series whose row is current.")
@click.option(
    "--preview",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for before/after side views (<series>_before.png, <series>_after.png).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
def deface(
    db: Path, series: tuple[str, ...], margin: float, refit: bool, preview: Path | None,
    quiet: bool,
) -> None:  # fmt: skip
    """Fit the face cut of head series; exit 1 if one cannot be defaced.

    The export defaces the series listed under `deface.series` in the config;
    this verb records the cut (table `deface`) so it can be checked first.
    """
    from gantry.session import Session

    def body() -> int:
        with Session(db) as s:
            table = s.deface(list(series), margin=margin, refit=refit)
            ok = table.filter(table["status"] == "ok")
            summary(
                f"defacing planes: {ok.height} of {table.height} series fitted",
                fitted=ok.height,
                series=table.height,
            )
            detail(
                "fitted:",
                ok.select("SeriesInstanceUID", "method", "offset", "removed_fraction", "seconds"),
                "planes",
            )
            if preview is not None:
                preview.mkdir(parents=True, exist_ok=True)
                for uid in ok["SeriesInstanceUID"].to_list():
                    pictures = s.deface_preview(uid)
                    (preview / f"{uid}_before.png").write_bytes(pictures.before)
                    (preview / f"{uid}_after.png").write_bytes(pictures.after)
            refused = table.filter(table["status"] != "ok")
            if refused.height:
                problem(
                    "CANNOT BE DEFACED:", refused.select("SeriesInstanceUID", "reason"), "refused"
                )
                return 1
            return 0

    run_guarded(body)
