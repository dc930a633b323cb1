"""`vigil performance`: live subgroup performance, and validation on your own files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.cli.app import app
from services.cli.common import (
    RiskClassChoice,
    ask_model,
    domain_errors,
    print_json,
    read_table,
    with_service,
)
from services.progress import console
from vigil_runtime.settings import get_settings

performance_app = typer.Typer(help="Subgroup performance: safety thresholds and equity.", no_args_is_help=True)
app.add_typer(performance_app, name="performance")


@performance_app.command("show")
def performance_show(
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    by: Annotated[str, typer.Option(help="subgroup attributes, comma-separated")] = "",
    window: Annotated[int, typer.Option(help="rolling window in days; 0 for since release")] = 30,
    version: Annotated[str | None, typer.Option(help="one model version")] = None,
    readers: Annotated[
        bool, typer.Option("--readers", help="the model alone against the clinician with it (GET .../readers)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Live subgroup performance from the event store (as GET /v1/models/{id}/performance)."""
    from services.models import performance
    from services.performance_view import print_performance, print_readers
    from vigil.performance import attributes_of

    if readers:
        from services.models import readers as readers_of

        attributes = attributes_of(by) or None
        found = ask_model(
            lambda engine, policy, now: readers_of(engine, policy, model, version, attributes, window or None, now)
        )
        if as_json:
            print_json(found)
            return
        print_readers(
            Console(), found, f"{model} {version or '(all versions)'}: the model alone and the clinician with it"
        )
        return

    result = ask_model(
        lambda engine, policy, now: performance(engine, policy, model, version, attributes_of(by), window or None, now)
    )
    if as_json:
        print_json(result)
        return
    span = f"last {window} days" if window else "since release"
    print_performance(Console(), result, f"{model} {version or '(all versions)'}: {result.outcomes} outcomes, {span}")
    Console().print(f"outcomes without a recorded inference: {result.outcomes_without_inference}")


@performance_app.command("compute")
def performance_compute(
    predictions: Annotated[Path, typer.Option(help="CSV/Parquet: inference_id, label, optional score, attributes")],
    outcomes: Annotated[Path, typer.Option(help="CSV/Parquet: inference_id, label (the truth)")],
    positive: Annotated[list[str], typer.Option(help="the critical label(s), judged one-vs-rest; repeatable")],
    by: Annotated[str, typer.Option(help="subgroup attributes (columns), comma-separated")] = "",
    risk_class: Annotated[RiskClassChoice, typer.Option(help="WHO risk class")] = RiskClassChoice.high,
    model: Annotated[str | None, typer.Option(help="apply this model's overrides from the policy file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Validate a model on your own population before go-live: the same core as the live monitoring."""
    from services.performance_view import print_performance
    from vigil.performance import FilePerformance, attributes_of, pairs_from_files, report, tally
    from vigil.policy import load_policy

    attributes = attributes_of(by)
    with domain_errors():
        policy = load_policy(get_settings().policy_file).for_model(model or "*").performance
        rules = policy.rules(risk_class.value)
        pairs, unmatched = pairs_from_files(read_table(predictions), read_table(outcomes), attributes)
    if not pairs:
        console.print("[red]no prediction matches an outcome by inference_id[/red]")
        raise typer.Exit(2)
    table = report(tally(pairs, positive, attributes, len(attributes) or 1), rules)
    result = FilePerformance(**dict(table), unmatched=unmatched)
    if as_json:
        print_json(result)
        return
    print_performance(Console(), result, f"Performance on {len(pairs)} outcomes (risk class {risk_class.value})")
    Console().print(
        f"unmatched: {unmatched.predictions_without_outcome} predictions without outcome, "
        f"{unmatched.outcomes_without_prediction} outcomes without prediction"
    )


@performance_app.command("estimate")
def performance_estimate(
    reference: Annotated[Path | None, typer.Option(help="CSV/Parquet with outcomes: score, label, truth")] = None,
    analysis: Annotated[Path | None, typer.Option(help="CSV/Parquet awaiting outcomes: score, label")] = None,
    positive: Annotated[str | None, typer.Option(help="files: the critical label; `score` is its probability")] = None,
    by: Annotated[str, typer.Option(help="files: subgroup attributes (columns), comma-separated")] = "",
    chunk: Annotated[int | None, typer.Option(help="files: outputs per estimate (default: the policy's)")] = None,
    model: Annotated[str | None, typer.Option(help="a registered model: its pending outputs from the store")] = None,
    version: Annotated[str | None, typer.Option(help="with --model: one version")] = None,
    window: Annotated[int, typer.Option(help="with --model: outputs of the last days; 0 for since release")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Estimated performance before the outcomes arrive (CBPE): scores calibrated on outcomes already
    known, the expected sensitivity, specificity, PPV and NPV per chunk. On files (--reference,
    --analysis, --positive) or on a registered model's outputs in the store (--model)."""
    from services.performance_view import print_estimates, print_model_estimate
    from vigil.performance import attributes_of
    from vigil.performance_estimate import NotEstimable, estimate_files
    from vigil.policy import load_policy

    if model is not None and reference is None:
        from services.models import performance_estimate as live

        found = ask_model(lambda engine, policy, now: live(engine, policy, model, version, window or None, now))
        if as_json:
            print_json(found)
            return
        print_model_estimate(Console(), found)
        return
    if reference is None or analysis is None or positive is None:
        console.print("[red]give --model, or --reference, --analysis and --positive[/red]")
        raise typer.Exit(2)
    with domain_errors():
        policy = load_policy(get_settings().policy_file).for_model(model or "*").performance
    try:
        result = estimate_files(read_table(reference), read_table(analysis), positive, attributes_of(by),
                                chunk or policy.estimate_chunk, policy.estimate_max_ece, policy.confidence)  # fmt: skip
    except NotEstimable as why:
        console.print(f"[red]no estimate: {why}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        print_json(result)
        return
    print_estimates(Console(), result, f"Estimated performance for {positive!r}: {len(result.rows)} chunks")


@performance_app.command("reference")
def performance_reference(
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    version: Annotated[str, typer.Option(help="model version")],
    file: Annotated[Path, typer.Option(help="CSV/Parquet of outputs with known outcomes: score, truth")],
    label: Annotated[str, typer.Option(help="the critical label whose probability `score` is")],
) -> None:
    """Calibrate a version's estimated performance (CBPE) on a file and record the fit
    (`CalibrationReferenceSet`): it replaces the version's first outcomes as the reference."""
    from datetime import UTC, datetime

    from services.models import ModelService
    from vigil.policy import load_policy

    with domain_errors():
        policy = load_policy(get_settings().policy_file)
        frame = read_table(file)
        body = file.read_bytes()
        event = with_service(
            ModelService,
            lambda models: models.set_calibration_reference(
                policy, model, version, label, body, frame, file.name, datetime.now(UTC)
            ),
        )
    console.print(
        f"calibration of {model} {version} for {label!r} recorded (event {event.event_id}): {event.reference_size} "
        f"rows, held-out ECE {event.calibration_ece:.3f}, {len(event.scores)} points"
    )
