"""``lookalike serve`` and ``lookalike keys create|list|revoke``.

``add_service_commands(subparsers)`` hooks them into the main ``lookalike`` parser. Like the
rest of the CLI, nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

_KEYS_FILE_ENV = "LOOKALIKE_KEYS_FILE"


def add_service_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    _add_serve(subparsers)
    _add_keys(subparsers)


# -- serve ------------------------------------------------------------------------------------


def _add_serve(subparsers: argparse._SubParsersAction[Any]) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the HTTP service (verdict API, catalogue admin, review page)",
        description="Serve checks over HTTP. Every option can also come from a LOOKALIKE_* "
        "environment variable (e.g. LOOKALIKE_MAX_BATCH); flags win.",
    )
    serve.add_argument("--index", dest="index_dir", help="index folder (LOOKALIKE_INDEX_DIR)")
    serve.add_argument("--keys-file", help=f"API keys file ({_KEYS_FILE_ENV})")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--catalogue-dir", help="where API-added images go (default: INDEX/catalogue-images)"
    )
    serve.add_argument(
        "--create-index",
        action="store_const",
        const=True,
        help="start with an empty index if INDEX has none",
    )
    serve.add_argument("--model", help="model of a new index, or instead of the index's own")
    serve.add_argument("--threads", type=int, help="torch threads (default: one per core)")
    serve.add_argument("--precision", choices=("auto", "bf16", "fp32"))
    serve.add_argument("--top-k", type=int)
    serve.add_argument(
        "--verify",
        action="store_const",
        const=True,
        help="re-rank with local features and query tiles (better verdicts, ~20x slower)",
    )
    serve.add_argument("--copy-threshold", type=float, help="with --review-threshold")
    serve.add_argument("--review-threshold", type=float, help="with --copy-threshold")
    serve.add_argument("--max-batch", type=int, help="largest forward pass (default 16)")
    serve.add_argument("--max-wait-ms", type=float, help="wait for a batch to fill (default 4)")
    serve.add_argument(
        "--no-micro-batching",
        dest="micro_batching",
        action="store_const",
        const=False,
        help="one image per forward pass (for comparison)",
    )
    serve.add_argument("--max-batch-images", type=int, help="images per /v1/check/batch")
    serve.add_argument("--request-timeout", dest="request_timeout_s", type=float)
    serve.add_argument(
        "--rate-limit", dest="rate_limit_per_s", type=float, help="images/s per key; 0: off"
    )
    serve.add_argument("--rate-burst", dest="rate_limit_burst", type=int)
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    serve.set_defaults(func=cmd_serve)


_SETTING_FLAGS = (
    "index_dir",
    "keys_file",
    "catalogue_dir",
    "create_index",
    "model",
    "threads",
    "precision",
    "top_k",
    "verify",
    "copy_threshold",
    "review_threshold",
    "max_batch",
    "max_wait_ms",
    "micro_batching",
    "max_batch_images",
    "request_timeout_s",
    "rate_limit_per_s",
    "rate_limit_burst",
)


def settings_from_args(args: argparse.Namespace) -> Any:
    """Flags given on the command line, over LOOKALIKE_* variables, over defaults."""
    from .settings import Settings

    given = {name: getattr(args, name) for name in _SETTING_FLAGS}
    return Settings(**{name: value for name, value in given.items() if value is not None})


def cmd_serve(args: argparse.Namespace) -> int:
    # Before torch loads: idle OpenMP threads must sleep, not spin, next to the decoders.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn
    from pydantic import ValidationError

    from .app import create_app
    from .observability import configure_logging

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"lookalike serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        access_log=False,  # the app logs each request itself, as JSON, with its route and key
        log_config=None,  # keep the JSON logging configured above
        timeout_graceful_shutdown=10,
    )
    return 0


# -- keys -------------------------------------------------------------------------------------


def _add_keys(subparsers: argparse._SubParsersAction[Any]) -> None:
    keys = subparsers.add_parser("keys", help="API keys of the HTTP service")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    default_file = os.environ.get(_KEYS_FILE_ENV)

    def keys_file_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--keys-file",
            default=default_file,
            required=default_file is None,
            help=f"the keys file (default: ${_KEYS_FILE_ENV})",
        )

    create = keys_sub.add_parser("create", help="make a key; prints it once")
    create.add_argument("--role", required=True, choices=("moderator", "admin"))
    create.add_argument("--name", required=True, help="who or what uses the key")
    keys_file_option(create)
    create.set_defaults(func=cmd_keys_create)

    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    keys_file_option(listing)
    listing.set_defaults(func=cmd_keys_list)

    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys_file_option(revoke)
    revoke.set_defaults(func=cmd_keys_revoke)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from .keys import KeyStore, Role

    key, secret = KeyStore(args.keys_file).create(args.name, Role(args.role))
    _print_json({**key.public_dict(), "key": secret})
    print(
        "lookalike: store this key now; it is not kept and cannot be shown again",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from .keys import KeyStore

    _print_json([key.public_dict() for key in KeyStore(args.keys_file).all_keys()])
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from .keys import KeyStore

    key = KeyStore(args.keys_file).revoke(args.key_id)
    if key is None:
        print(f"lookalike: no key {args.key_id!r} in {args.keys_file}", file=sys.stderr)
        return 1
    _print_json(key.public_dict())
    return 0


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
