"""The ``lookalike`` command: one small function per subcommand.

Heavy modules (torch, FAISS) are imported inside the commands, after the thread settings
below are in place, so ``lookalike --help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data.manifest import CatalogEntry
    from .detect import Detector
    from .index import CatalogIndex
    from .model import Embedder


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _note(message: str) -> None:
    print(f"lookalike: {message}", file=sys.stderr)


def _embedder_from_args(args: argparse.Namespace) -> Embedder:
    from .model import create_embedder

    return create_embedder(
        args.model,
        args.weights,
        input_size=args.input_size,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
        precision=args.precision,
        threads=args.threads,
        batch_size=args.batch_size,
    )


def _detector_from_args(args: argparse.Namespace) -> Detector:
    from .detect import load_detector

    model = _embedder_from_args(args) if args.model else None
    detector = load_detector(
        args.index,
        model=model,
        top_k=args.top_k,
        precision=args.precision,
        threads=args.threads,
        batch_size=args.batch_size,
        verify=getattr(args, "verify", None),
        logos=False if getattr(args, "no_logos", False) else None,
        tiles=getattr(args, "tiles", None),
    )
    _warn_untrained(detector.embedder)
    return detector


def _warn_untrained(embedder: Embedder) -> None:
    from .model.embedder import untrained_message

    if not embedder.trained:
        _note("NOTE: " + untrained_message(embedder.name))


# -- index -------------------------------------------------------------------------------


def cmd_index_build(args: argparse.Namespace) -> int:
    from .data.manifest import is_vector_logo, load_catalog
    from .indexing import add_entries, new_index_for

    entries = load_catalog(Path(args.catalogue), Path(args.manifest) if args.manifest else None)
    if not entries:
        _note(f"no images found in {args.catalogue}")
        return 1
    embedder = _embedder_from_args(args)
    _warn_untrained(embedder)
    _check_logo_model(args, entries)  # fail fast, before the photos are embedded
    index = new_index_for(embedder, factory=args.factory)
    report = add_entries(
        index,
        embedder,
        [entry for entry in entries if not is_vector_logo(entry)],
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.quiet,
    )
    logo_summary = _index_logos(args, entries, fresh=True)
    logos_added = bool(logo_summary and logo_summary["added"])
    if not logos_added:  # a rebuild must not keep the previous build's logos
        from .logos.catalog import logo_index_dir

        shutil.rmtree(logo_index_dir(args.index), ignore_errors=True)
    if not report.added and not logos_added:
        _note("no catalogue image could be indexed; the index was not written")
        _print_json({**report.summary(), "logos": logo_summary})
        return 1
    snapshot = index.save(args.index)
    _describe_keypoints(embedder, index, quiet=args.quiet)
    _print_json(
        {
            "index": str(args.index),
            "snapshot": snapshot.name,
            **report.summary(),
            "logos": logo_summary,
            "model": embedder.fingerprint.to_dict(),
        }
    )
    return 0


def _describe_keypoints(embedder: Embedder, index: CatalogIndex, *, quiet: bool) -> None:
    """Describe the catalogue photos' keypoints for re-ranking's keypoint voting now (those
    not described before, by their sha256), kept in the index folder, rather than in the
    first check (~10 s per thousand photos), when the model recommends voting."""
    from .detect import verifier_for

    verifier = verifier_for(embedder, None)
    if verifier is None or verifier.config.vote < 1:
        return
    if not quiet:
        _note("describing the catalogue photos' keypoints for re-ranking")
    verifier.sync_keypoints(index, keep=True)


def _check_logo_model(args: argparse.Namespace, entries: Sequence[CatalogEntry]) -> None:
    """Turn logo indexing off (with a note) when the catalogue has logos but the shipped
    logo model is absent; a missing user-given model file is an error, raised now."""
    from .logos.catalog import DEFAULT_LOGO_WEIGHTS

    if args.no_logos or not any(entry.kind == "logo" for entry in entries):
        return
    if args.logo_model == "default":
        if not DEFAULT_LOGO_WEIGHTS.is_file():
            _note(f"NOTE: no logo model at {DEFAULT_LOGO_WEIGHTS}; logos indexed as photos only")
            args.no_logos = True
        return
    if not Path(args.logo_model).is_file():
        raise FileNotFoundError(f"--logo-model {args.logo_model}: no such file")
    args.logo_model = str(Path(args.logo_model).resolve())  # an index is loaded from anywhere


def _index_logos(
    args: argparse.Namespace, entries: Sequence[CatalogEntry], *, fresh: bool
) -> dict[str, Any] | None:
    """Add the logo entries to the index's logo catalogue (a new one when ``fresh``);
    None when there are none or logo search is turned off."""
    from .logos.catalog import LogoCatalog, has_logo_index, logo_index_dir, resolve_logo_model

    logos = [entry for entry in entries if entry.kind == "logo"]
    if not logos or args.no_logos:
        return None
    folder = logo_index_dir(args.index)
    if not fresh and has_logo_index(args.index):
        catalog = LogoCatalog.load(folder)
    else:
        catalog = LogoCatalog(resolve_logo_model(args.logo_model), model_ref=args.logo_model)
    report = catalog.add(logos, progress=not args.quiet)
    if report.added:
        catalog.save(folder)
    return report.summary()


def cmd_index_add(args: argparse.Namespace) -> int:
    from .data.manifest import is_vector_logo, load_catalog
    from .indexing import add_entries

    detector = _detector_from_args(args)
    entries = load_catalog(Path(args.catalogue), Path(args.manifest) if args.manifest else None)
    from .logos.catalog import has_logo_index

    if not has_logo_index(args.index):  # else the catalogue's recorded model is used
        _check_logo_model(args, entries)
    report = add_entries(
        detector.index,
        detector.embedder,
        [entry for entry in entries if not is_vector_logo(entry)],
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.quiet,
    )
    logo_summary = _index_logos(args, entries, fresh=False)
    if report.added:
        detector.index.save(args.index)
        _describe_keypoints(detector.embedder, detector.index, quiet=args.quiet)
    _print_json({**report.summary(), "logos": logo_summary})
    logo_errors = bool(logo_summary and logo_summary["errors"])
    return 0 if not report.errors and not logo_errors else 1


def cmd_index_remove(args: argparse.Namespace) -> int:
    from .index import CatalogIndex
    from .logos.catalog import has_logo_index, logo_index_dir

    index = CatalogIndex.load(args.index)
    removed = index.remove(args.item_ids)
    if removed:
        index.save(args.index)
    if has_logo_index(args.index):  # logos are in both: the photo index and the logo one
        logos = CatalogIndex.load(logo_index_dir(args.index))
        removed_logos = logos.remove(args.item_ids)
        if removed_logos:
            logos.save(logo_index_dir(args.index))
        removed = list(dict.fromkeys([*removed, *removed_logos]))
    missing = sorted(set(args.item_ids) - set(removed))
    _print_json({"removed": removed, "not_found": missing})
    return 0 if not missing else 1


def cmd_index_stats(args: argparse.Namespace) -> int:
    from .index import CatalogIndex
    from .logos.catalog import has_logo_index, logo_index_dir

    stats = CatalogIndex.load(args.index).stats()
    if has_logo_index(args.index):
        stats["logo_search"] = CatalogIndex.load(logo_index_dir(args.index)).stats()
    _print_json(stats)
    return 0


# -- check / score / eval ------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from .data.decode import ImageDecodeError

    detector = _detector_from_args(args)
    results: list[dict[str, Any]] = []
    for image in args.images:
        try:
            prepared = detector.prepare(image)
            verdict = detector.check_prepared([prepared])[0]
        except ImageDecodeError as exc:
            results.append({"image": image, "label": "error", "error": str(exc)})
            continue
        result = {"image": image, **verdict.to_dict()}
        if args.evidence:
            from .verdict_evidence import write_verdict_evidence

            result["evidence"] = str(
                write_verdict_evidence(detector, image, verdict, Path(args.evidence))
            )
        results.append(result)
    _print_json(results)
    return 1 if any(r["label"] == "error" for r in results) else 0


def cmd_score(args: argparse.Namespace) -> int:
    from .data.sources import read_file_list

    inputs = list(args.inputs)
    for listing in args.files_from:
        inputs += read_file_list(listing)
    if not inputs:
        raise SystemExit("lookalike score: name inputs, or --files-from a list of them")
    detector = _detector_from_args(args)
    common: dict[str, Any] = {
        "fmt": args.format,
        "top_k": args.top_k,
        "batch_size": args.batch_size,
        "progress": not args.quiet,
    }
    if args.engine == "ray":
        from .ray_engine import score_images_ray

        threads = args.threads or 1
        summary = score_images_ray(
            detector, inputs, args.out, actors=args.ray_actors, threads_per_actor=threads, **common
        )
    else:
        from .scoring import score_images

        summary = score_images(detector, inputs, args.out, workers=args.workers, **common)
    _print_json(summary.to_dict())
    if summary.errors:
        _note(
            f"{len(summary.errors)} input(s) could not be read; first: "
            f"{next(iter(summary.errors.items()))}"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    summary = write_report(
        args.results, args.out, top=args.top, index_dir=args.index, thumb_side=args.thumb_side
    )
    _print_json({"out": str(args.out), **summary.to_dict()})
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .training.metrics import evaluate, format_report, read_ground_truth, read_predictions

    result = evaluate(read_ground_truth(args.ground_truth), read_predictions(args.predictions))
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_report(result))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .data.benchmark import split_images
    from .data.manifest import iter_image_files
    from .training.train import TrainConfig, train

    images = list(iter_image_files([Path(p) for p in args.images]))
    if args.split != "all":
        # The copy-detection benchmark evaluates on the reference/distractor parts: training
        # on the train part only keeps its figures honest.
        images = list(split_images(images).train)
    if not images:
        _note("no training images found")
        return 1
    config = TrainConfig(
        images=images,
        out_dir=args.out,
        model=args.model,
        init_weights=args.init_weights,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        threads=args.threads,
        seed=args.seed,
        precision=args.precision,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        budget_minutes=args.budget_minutes,
        num_workers=args.workers,
        eval_every_steps=args.eval_every,
        checkpoint_every_steps=args.checkpoint_every,
    )
    result = train(config, progress=not args.quiet)
    _print_json(
        {
            "checkpoint": str(result.checkpoint),
            "best": str(result.best) if result.best else None,
            "steps": result.steps,
            "last_eval": _last_eval(result.history),
        }
    )
    return 0


def _stage_widths(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"--widths: expected four integers like 16,32,64,128, got {text!r}")
    first, second, third, fourth = (int(part) for part in parts)
    return first, second, third, fourth


def cmd_train_logos(args: argparse.Namespace) -> int:
    from .logos.network import LogoNetConfig, load_logo_model
    from .training.logo_train import LogoTrainConfig, LogoTrainingData, train_logos

    # settings first: a bad one fails before minutes of rendering logos
    network = LogoNetConfig()
    if args.init_from:  # fine-tuning: the network is shaped as the model it starts from
        if args.widths is not None or args.input_size is not None:
            raise ValueError("--init-from takes the network settings of the model it starts from")
        network = load_logo_model(args.init_from).config
    if args.input_size is not None:
        network = dataclasses.replace(network, input_size=args.input_size)
    if args.widths is not None:
        network = dataclasses.replace(network, widths=_stage_widths(args.widths))
    if args.colour:
        network = dataclasses.replace(network, channels=3)
    config = LogoTrainConfig(
        out_dir=Path(args.out),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        network=network,
        eval_every=args.eval_every,
        max_minutes=args.max_minutes,
        budget_minutes=args.budget_minutes,
        precision=args.precision,
        init_from=Path(args.init_from) if args.init_from else None,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        progress=not args.quiet,
        negatives=args.negatives,
        device=args.device,
        all_references=args.all_references,
        mined_negatives=args.mined_negatives,
        synthetic_logos=args.synthetic_logos,
    )
    source = Path(args.shared_data)
    if LogoTrainingData.is_saved(source):
        data = LogoTrainingData.read(source, progress=not args.quiet)
    else:  # the benchmark's split (needs FAISS, which a saved folder does not)
        from .training.logo_benchmark import training_backgrounds, training_logos

        data = LogoTrainingData.load(
            training_logos(source), training_backgrounds(source), progress=not args.quiet
        )
    _print_json({"model": str(train_logos(config, data))})
    return 0


def cmd_save_logo_training(args: argparse.Namespace) -> int:
    from .training.logo_benchmark import training_backgrounds, training_logos
    from .training.logo_train import LogoTrainingData

    if args.max_backgrounds is not None and args.max_backgrounds < 0:
        raise ValueError(f"--max-backgrounds must be 0 or more, got {args.max_backgrounds}")
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be 1..100, got {args.quality}")
    shared = Path(args.shared_data)
    backgrounds = training_backgrounds(shared)
    if args.max_backgrounds is not None and args.max_backgrounds < len(backgrounds):
        # evenly spread over the sorted photos, so a smaller set still spans the catalogue
        step = len(backgrounds) / max(1, args.max_backgrounds)
        backgrounds = [backgrounds[int(i * step)] for i in range(args.max_backgrounds)]
    data = LogoTrainingData.load(training_logos(shared), backgrounds, progress=not args.quiet)
    data.save(Path(args.out), background_quality=args.quality)
    _print_json({"out": args.out, "logos": len(data.logos), "backgrounds": len(data.backgrounds)})
    return 0


def cmd_calibrate_logos(args: argparse.Namespace) -> int:
    from .training.logo_calibrate import calibrate_logo_model

    result = calibrate_logo_model(
        Path(args.model),
        Path(args.shared_data),
        Path(args.out),
        Path(args.work),
        positives=args.positives,
    )
    _print_json(
        {
            "model": args.out,
            **result.to_metadata()["thresholds"],
            "positives": result.positives,
            "negatives": result.negatives,
            "window_only": result.to_metadata()["window_only"],
        }
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .data.tiles import TileConfig
    from .rerank import RerankConfig
    from .training.calibrate_model import calibrate_model

    rerank = RerankConfig(
        shortlist=args.shortlist,
        band=tuple(args.verify_band) if args.verify_band else None,
        **({} if args.vote is None else {"vote": args.vote}),
        **({} if args.sibling_penalty is None else {"sibling_penalty": args.sibling_penalty}),
    )
    added = calibrate_model(
        args.checkpoint,
        args.images,
        args.out,
        work=args.work,
        rerank=rerank,
        tiles=None if args.no_tiles else TileConfig(),
        **(
            {}
            if args.descriptor_sibling_penalty is None
            else {"sibling_penalty": args.descriptor_sibling_penalty}
        ),
        queries_per_kind=args.queries_per_kind,
        progress=not args.quiet,
    )
    _print_json(
        {"out": args.out, **{k: v for k, v in added.items() if not k.startswith("calibration")}}
    )
    return 0


def _last_eval(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    evals = [entry for entry in history if "micro_ap" in entry]
    return evals[-1] if evals else None


def cmd_models(args: argparse.Namespace) -> int:
    from .model import get_spec, list_models

    _print_json({name: get_spec(name).to_dict() for name in list_models()})
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(
        Path(args.out),
        images=Path(args.images) if args.images else None,
        limit=args.limit,
        threads=args.threads,
        progress=not args.quiet,
    )
    return 0


# -- parser ----------------------------------------------------------------------------------


def _add_runtime_options(
    parser: argparse.ArgumentParser, *, workers_help: str = "image decoding threads"
) -> None:
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: one per core)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help=workers_help)
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="auto: bf16 on CPUs with native bf16 units, else fp32",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_verify_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="re-rank the descriptor's shortlist with local features (ORB + RANSAC); "
        "default: as the model was calibrated",
    )
    parser.add_argument(
        "--tiles",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also search parts of each photo (collages, pastes): slower; default: as the "
        "model was calibrated (on with re-ranking)",
    )


def _add_no_logos_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-logos",
        action="store_true",
        help="skip logo search even when the index has a logo catalogue",
    )


def _add_logo_index_options(parser: argparse.ArgumentParser) -> None:
    _add_no_logos_option(parser)
    parser.add_argument(
        "--logo-model",
        default="default",
        help="logo region model for the catalogue's logos: 'default' (shipped) or a file",
    )


def _add_model_options(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    parser.add_argument(
        "--model",
        default=default,
        help="registered model name (see `lookalike models`), or a checkpoint "
        "or TorchScript file" + ("" if default else "; default: the model the index records"),
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="with a model name: a lookalike checkpoint or a torchvision backbone state dict",
    )
    parser.add_argument("--input-size", type=int, default=None, help="TorchScript models only")
    parser.add_argument("--mean", type=float, nargs=3, default=None, help="TorchScript only")
    parser.add_argument("--std", type=float, nargs=3, default=None, help="TorchScript only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lookalike",
        description="Find listing photos that reuse authentic catalogue photos or logos.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="build and maintain a catalogue index")
    index_sub = index.add_subparsers(dest="index_command", required=True)

    build = index_sub.add_parser("build", help="index a catalogue folder or manifest")
    build.add_argument("catalogue", help="folder of images, manifest (.csv/.jsonl) or image")
    build.add_argument("--index", required=True, help="index folder to write")
    build.add_argument("--manifest", help="CSV/JSONL manifest; image paths relative to CATALOGUE")
    build.add_argument(
        "--factory",
        default="Flat",
        help="FAISS index factory string: Flat (exact), HNSW32, IVF1024,Flat ...",
    )
    _add_model_options(build, default="default")
    _add_runtime_options(build)
    _add_logo_index_options(build)
    build.set_defaults(func=cmd_index_build)

    add = index_sub.add_parser("add", help="add images to an existing index")
    add.add_argument("catalogue", help="folder of images, manifest (.csv/.jsonl) or image")
    add.add_argument("--index", required=True)
    add.add_argument("--manifest")
    _add_model_options(add, default=None)
    _add_runtime_options(add)
    _add_logo_index_options(add)
    add.set_defaults(func=cmd_index_add, top_k=5)

    remove = index_sub.add_parser("remove", help="remove items by item id")
    remove.add_argument("item_ids", nargs="+")
    remove.add_argument("--index", required=True)
    remove.set_defaults(func=cmd_index_remove)

    stats = index_sub.add_parser("stats", help="print index statistics as JSON")
    stats.add_argument("--index", required=True)
    stats.set_defaults(func=cmd_index_stats)

    check = sub.add_parser("check", help="check images, print JSON verdicts")
    check.add_argument("images", nargs="+")
    check.add_argument("--index", required=True)
    check.add_argument("--top-k", type=int, default=5)
    _add_model_options(check, default=None)
    _add_runtime_options(check)
    _add_verify_option(check)
    _add_no_logos_option(check)
    check.add_argument(
        "--evidence",
        metavar="DIR",
        help="write an evidence picture per image (listing beside its matches) into DIR",
    )
    check.set_defaults(func=cmd_check)

    score = sub.add_parser(
        "score", help="score files, folders and tar shards into a results file (resumable)"
    )
    score.add_argument(
        "inputs",
        nargs="*",
        help="image files, folders (recursive) and tar shards of images (.tar, .tar.gz)",
    )
    score.add_argument(
        "--files-from",
        action="append",
        default=[],
        metavar="LIST",
        help="a file listing inputs one per line (relative to the list's folder); repeatable",
    )
    score.add_argument("--index", required=True)
    score.add_argument("--out", required=True, help="results file; rerun to resume")
    score.add_argument("--top-k", type=int, default=5)
    score.add_argument(
        "--format",
        choices=("parquet", "csv", "jsonl", "isc"),
        default=None,
        help="default: from --out's extension (.csv, .jsonl, .parquet), else parquet; isc: "
        "query_id,reference_id,score rows (ISC 2021)",
    )
    score.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: decoding worker processes on this machine; ray: a Ray Data pipeline on "
        "the cluster named by RAY_ADDRESS, else a local Ray",
    )
    score.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        help="--engine ray: model replicas (default: cluster CPUs / --threads)",
    )
    _add_model_options(score, default=None)
    _add_runtime_options(score, workers_help="image decoding worker processes (local engine)")
    _add_verify_option(score)
    _add_no_logos_option(score)
    score.set_defaults(func=cmd_score)

    report = sub.add_parser(
        "report", help="a self-contained HTML page of the top suspects of a results file"
    )
    report.add_argument("results", help="results of `lookalike score` (.parquet, .jsonl, .csv)")
    report.add_argument("--out", required=True, help="HTML file to write")
    report.add_argument("--top", type=int, default=100, help="suspects to show")
    report.add_argument(
        "--index", default=None, help="index folder, to find catalogue images CSV rows lack"
    )
    report.add_argument("--thumb-side", type=int, default=224, help="thumbnail size, pixels")
    report.set_defaults(func=cmd_report)

    ev = sub.add_parser("eval", help="µAP, recall@P90, recall@1 of ISC-format predictions")
    ev.add_argument("predictions", help="query_id,reference_id,score CSV (or JSONL/Parquet)")
    ev.add_argument("ground_truth", help="query_id,reference_id CSV")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    tr = sub.add_parser("train", help="train a copy-detection descriptor (resumable)")
    tr.add_argument("images", nargs="+", help="folders or files of catalogue photos")
    tr.add_argument("--out", required=True, help="run folder: last.pt, best.pt, state.pt")
    tr.add_argument(
        "--split",
        choices=("train", "all"),
        default="all",
        help="train: only the benchmark's training part of these images",
    )
    tr.add_argument("--model", default="default", help="registered architecture")
    tr.add_argument(
        "--init-weights",
        default=None,
        help="start from a lookalike checkpoint or a torchvision state dict",
    )
    tr.add_argument("--input-size", type=int, default=160)
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--batch-size", type=int, default=64, help="pairs per step")
    tr.add_argument("--lr", type=float, default=1.5e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--max-steps", type=int, default=None, help="stop early (resumable)")
    tr.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop this call after that long (resumable: the same command goes on)",
    )
    tr.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="the whole run's training time: the learning rate decays to 0 as it is spent, "
        "then training ends, however fast the machine (--epochs stays an upper bound)",
    )
    tr.add_argument("--eval-every", type=int, default=200, help="steps between evaluations")
    tr.add_argument("--checkpoint-every", type=int, default=100)
    tr.add_argument("--threads", type=int, default=None)
    tr.add_argument("--workers", type=int, default=1, help="augmentation worker processes")
    tr.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=cmd_train)

    tl = sub.add_parser(
        "train-logos", help="train the logo region model on synthetic composites (resumable)"
    )
    tl.add_argument(
        "shared_data",
        help="folder with simple_icons/, car_logos/ and fashion_products_small/ "
        "(benchmark logos and photos are held out), or one written by save-logo-training",
    )
    tl.add_argument("--out", required=True, help="run folder: last.pt (resume), logo.pt")
    tl.add_argument("--steps", type=int, default=5000)
    tl.add_argument("--batch-size", type=int, default=128, help="logos per step")
    tl.add_argument(
        "--negatives", type=int, default=48, help="background windows per step (extra negatives)"
    )
    tl.add_argument(
        "--all-references",
        action="store_true",
        help="contrast each window with every training logo, not only the batch's (embeds "
        "the whole catalogue each step: for a GPU)",
    )
    tl.add_argument(
        "--mined-negatives",
        type=int,
        default=0,
        metavar="K",
        help="for each window, the K other training logos it is most like join the batch's "
        "(found in a memory of every logo's vector): most of --all-references' contrast, "
        "at a CPU's cost",
    )
    tl.add_argument(
        "--synthetic-logos",
        type=int,
        default=0,
        help="made-up logos added to each step's batch: more identities than the catalogue's",
    )
    tl.add_argument("--device", default="cpu", help="where the network trains: cpu, cuda, ...")
    tl.add_argument("--lr", type=float, default=3e-3)
    tl.add_argument("--input-size", type=int, default=None, help="window side, pixels (default 48)")
    tl.add_argument(
        "--widths",
        default=None,
        help="channels of the network's four stages, comma-separated (default 32,64,128,256)",
    )
    tl.add_argument(
        "--init-from",
        default=None,
        help="a logo model (logo.pt) to fine-tune: a new run starts from its weights and "
        "network settings, under a fresh schedule",
    )
    tl.add_argument(
        "--colour",
        action="store_true",
        help="windows carry the colour-opponent views beside grey (3 input channels); with "
        "--init-from a grey model, its colour inputs start at zero weight",
    )
    tl.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    tl.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="end the run annealed after this much training time (over resumed calls); "
        "--steps stays an upper bound",
    )
    tl.add_argument("--eval-every", type=int, default=500)
    tl.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop this call after that long (resumable: the same command goes on)",
    )
    tl.add_argument("--workers", type=int, default=2, help="sample-drawing processes")
    tl.add_argument("--threads", type=int, default=1)
    tl.add_argument(
        "--seed",
        type=int,
        default=0,
        help="samples and initial weights (the held-out logos stay the same whatever it is)",
    )
    tl.add_argument("--quiet", action="store_true")
    tl.set_defaults(func=cmd_train_logos)

    sl = sub.add_parser(
        "save-logo-training",
        help="render the training logos and decode the backgrounds once into a folder that "
        "train-logos reads in seconds (e.g. to train on another machine)",
    )
    sl.add_argument("shared_data", help="folder with the shared logos and photos")
    sl.add_argument("--out", required=True, help="folder to write")
    sl.add_argument(
        "--max-backgrounds",
        type=int,
        default=None,
        help="keep this many background photos, evenly spread (default: all)",
    )
    sl.add_argument("--quality", type=int, default=90, help="JPEG quality of the backgrounds")
    sl.add_argument("--quiet", action="store_true")
    sl.set_defaults(func=cmd_save_logo_training)

    cl = sub.add_parser(
        "calibrate-logos",
        help="calibrate a logo model: expected precision and the logo / review thresholds",
    )
    cl.add_argument("model", help="trained logo model (e.g. runs/logo/logo.pt)")
    cl.add_argument("shared_data", help="folder with the shared logos and photos")
    cl.add_argument("--out", required=True, help="calibrated logo model to write")
    cl.add_argument("--work", default="runs/logo-calibration", help="scratch folder")
    cl.add_argument("--positives", type=int, default=300)
    cl.set_defaults(func=cmd_calibrate_logos)

    cal = sub.add_parser("calibrate", help="calibrate a trained checkpoint on held-out photos")
    cal.add_argument("checkpoint", help="trained checkpoint (e.g. runs/x/last.pt)")
    cal.add_argument(
        "images", help="photo folder; only its benchmark reference/distractor parts are used"
    )
    cal.add_argument("--out", required=True, help="calibrated checkpoint to write")
    cal.add_argument("--work", default="runs/calibration", help="scratch folder")
    cal.add_argument("--shortlist", type=int, default=30, help="candidates verified per query")
    cal.add_argument(
        "--vote",
        type=int,
        default=None,
        help="catalogue photos sharing the most keypoints with a listing that join its "
        "shortlist (default: re-ranking's default, 3; 0: none)",
    )
    cal.add_argument(
        "--sibling-penalty",
        type=float,
        default=None,
        help="re-ranked scores lowered by this times the catalogue photo's similarity to its "
        "closest other catalogue photos above the catalogue's mean (default 1; 0: off)",
    )
    cal.add_argument(
        "--descriptor-sibling-penalty",
        type=float,
        default=None,
        help="the same for descriptor-only scores (default 0.75; 0: off)",
    )
    cal.add_argument(
        "--queries-per-kind",
        type=int,
        default=30,
        help="edited copies per edit kind, and as many edited distractors (default 30)",
    )
    cal.add_argument(
        "--verify-band",
        type=float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="verify only queries whose descriptor score is in [LOW, HIGH)",
    )
    cal.add_argument(
        "--no-tiles", action="store_true", help="calibrate re-ranking without query tiles"
    )
    cal.add_argument("--quiet", action="store_true")
    cal.set_defaults(func=cmd_calibrate)

    models = sub.add_parser("models", help="list registered models")
    models.set_defaults(func=cmd_models)

    demo = sub.add_parser("demo", help="end-to-end run on images found or made offline")
    demo.add_argument("--out", default="demo-out", help="working folder (default: demo-out)")
    demo.add_argument(
        "--images",
        default=None,
        help="folder of real photos to use as the catalogue (else made in code)",
    )
    demo.add_argument("--limit", type=int, default=200, help="catalogue size")
    demo.add_argument("--threads", type=int, default=None)
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)

    from .service.cli import add_service_commands  # light: FastAPI loads inside the commands

    add_service_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Idle OpenMP threads must not spin: with 2 cores, a spinning pool starves the decoders.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # `lookalike eval ... | head`: the reader left; not an error of ours.
        sys.stderr.close()
        return 0
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        _note(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
