"""`imagegen`: the platform from a terminal.

Exit codes: 0 done; 1 the platform refused the request (its message is printed); 2 a usage mistake;
3 a generation that ended failed or cancelled; 4 the platform could not be reached or answered 5xx;
130 interrupted (Ctrl-C; a sync `generate` cancels its job first and prints its id).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
from collections.abc import Iterable
from typing import Any

from .client import ApiError, Generation, ImageGen, Unreachable

EXIT_REFUSED, EXIT_USAGE, EXIT_GENERATION_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 1, 2, 3, 4, 130
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class UsageError(Exception):
    """A mistake in the command line: its message is printed, no traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    client = ImageGen(args.url, args.api_key)
    try:
        return args.run(client, args) or 0
    except UsageError as exc:
        print(f"imagegen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"imagegen: {exc.message} (HTTP {exc.status})", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.status >= 500 else EXIT_REFUSED
    except Unreachable as exc:
        print(f"imagegen: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagegen", description="imagegen from a terminal.")
    parser.add_argument("--url", default=os.environ.get("IMAGEGEN_URL"), help="default: $IMAGEGEN_URL")
    parser.add_argument(
        "--api-key", default=os.environ.get("IMAGEGEN_API_KEY"), help="default: $IMAGEGEN_API_KEY"
    )
    parser.add_argument("--json", action="store_true", help="print JSON rather than a table")
    # Every command also takes these after its name (`imagegen ls --json`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("--url", default=argparse.SUPPRESS, help="default: $IMAGEGEN_URL")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="default: $IMAGEGEN_API_KEY")
    commands = parser.add_subparsers(required=True, metavar="command")

    generate = commands.add_parser("generate", parents=[common], help="make images")
    generate.add_argument("prompt")
    generate.add_argument("--model")
    generate.add_argument("-n", "--n", type=int)
    generate.add_argument("--size", help="WIDTHxHEIGHT, e.g. 512x512")
    generate.add_argument("--seed", type=int)
    generate.add_argument("--user")
    generate.add_argument("--input", action="append", default=[], help="an input image: a file or a URL")
    generate.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                          help="a model parameter (VALUE read as JSON when it is JSON)")  # fmt: skip
    generate.add_argument("--async", dest="run_async", action="store_true", help="answer at once, pending")
    generate.add_argument("-o", "--output", help="save the images into this folder")
    generate.set_defaults(run=_generate)

    listing = commands.add_parser("ls", parents=[common], help="list generations, newest first")
    listing.add_argument("--user")
    listing.add_argument("--model")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(run=_ls)

    get = commands.add_parser("get", parents=[common], help="one generation")
    get.add_argument("id")
    get.add_argument("-o", "--output", help="save its images into this folder")
    get.set_defaults(run=_get)

    watch = commands.add_parser("watch", parents=[common], help="follow a generation until it finishes")
    watch.add_argument("id")
    watch.set_defaults(run=_watch)

    for name, run, text in (("cancel", _cancel, "stop a generation"), ("rm", _rm, "delete a generation")):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("id")
        command.set_defaults(run=run)

    models = commands.add_parser("models", parents=[common], help="models: ls, add, rm").add_subparsers(
        required=True, metavar="action"
    )
    models.add_parser("ls", parents=[common]).set_defaults(run=_models_ls)
    add = models.add_parser("add", parents=[common])
    add.add_argument("name")
    add.add_argument("--provider", required=True)
    add.add_argument("--server", action="append", required=True, help="a server's URL (repeatable)")
    add.add_argument("--upstream-model", default="")
    add.add_argument("--max-concurrency", type=int, default=1)
    add.set_defaults(run=_models_add)
    remove = models.add_parser("rm", parents=[common])
    remove.add_argument("name")
    remove.set_defaults(run=_models_rm)

    keys = commands.add_parser("keys", parents=[common], help="API keys: create, ls, revoke").add_subparsers(
        required=True, metavar="action"
    )
    create = keys.add_parser("create", parents=[common])
    create.add_argument("name")
    create.add_argument("--project", required=True)
    create.add_argument("--kind", choices=("secret", "publishable"), default="secret")
    create.add_argument("--user")
    create.set_defaults(run=_keys_create)
    key_list = keys.add_parser("ls", parents=[common])
    key_list.add_argument("--project", required=True)
    key_list.set_defaults(run=_keys_ls)
    revoke = keys.add_parser("revoke", parents=[common])
    revoke.add_argument("id")
    revoke.set_defaults(run=_keys_revoke)

    usage = commands.add_parser("usage", parents=[common], help="images and failures per day")
    usage.add_argument("--user")
    usage.add_argument("--model")
    usage.set_defaults(run=_usage)

    verify = commands.add_parser("verify", parents=[common], help="the C2PA verdict on an image file")
    verify.add_argument("file")
    verify.set_defaults(run=_verify)
    return parser


# -- generations --------------------------------------------------------------------------------------


def _generate(client: ImageGen, args) -> int:
    width = height = None
    if args.size:
        width_text, _, height_text = args.size.lower().partition("x")
        if not (width_text.isdigit() and height_text.isdigit()):
            raise UsageError(f"--size takes WIDTHxHEIGHT, e.g. 512x512; got {args.size!r}")
        width, height = int(width_text), int(height_text)
    params = {}
    for param in args.param:
        name, equals, value = param.partition("=")
        if not equals or not name:
            raise UsageError(f"--param takes KEY=VALUE; got {param!r}")
        params[name] = _json_or_text(value)
    inputs = [_input(client, given) for given in args.input]
    created = client.generate(
        args.prompt,
        model=args.model,
        n=args.n,
        width=width,
        height=height,
        seed=args.seed,
        user=args.user,
        input=params or None,
        input_images=inputs,
        wait=False,
    )
    if args.run_async:
        _show(args, [created])
        return 0
    try:
        finished = _follow(client, created)
    except KeyboardInterrupt:
        try:
            client.cancel(created.id)
        finally:
            print(f"\ncancelled {created.id}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.output:
        _save(client, finished, args.output)
    _show(args, [finished])
    return 0 if finished.status == "completed" else EXIT_GENERATION_FAILED


def _input(client: ImageGen, given: str) -> str:
    if given.startswith(("http://", "https://", "data:", "upl_")):
        return given
    path = pathlib.Path(given)
    if not path.is_file():
        raise UsageError(f"--input {given!r} is neither a file nor a URL")
    return client.upload(path.read_bytes()).id


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _follow(client: ImageGen, generation: Generation) -> Generation:
    """Watches to the end, drawing where the job stands on a terminal."""
    bar = _Bar()
    last = generation
    try:
        for last in client.watch(generation.id):
            bar.draw(last)
    finally:
        bar.close()
    return last


class _Bar:
    """One line on stderr, redrawn: queue position, then progress; nothing when stderr is no terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def draw(self, generation: Generation) -> None:
        if not self.live:
            return
        width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 40))
        if generation.status == "pending":
            ahead = generation.queue_position
            text = f"queued: {ahead} ahead" if ahead is not None else "queued"
        elif generation.status == "processing":
            done = generation.progress or 0.0
            filled = int(done * width)
            steps = f" step {generation.step}/{generation.steps}" if generation.steps else ""
            text = f"[{'#' * filled}{'.' * (width - filled)}] {done:4.0%}{steps}"
        else:
            text = generation.status
        sys.stderr.write(f"\r\x1b[2K{generation.id} {text}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _save(client: ImageGen, generation: Generation, folder: str) -> list[pathlib.Path]:
    target = pathlib.Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    saved = []
    for index, image in enumerate(generation.images):
        path = target / f"{generation.id}-{index}.{_EXTENSIONS.get(image.content_type, 'bin')}"
        path.write_bytes(client.download(image.url))
        saved.append(path)
        print(path, file=sys.stderr)
    return saved


def _ls(client: ImageGen, args) -> int:
    _show(args, list(client.list(user=args.user, model=args.model, status=args.status, limit=args.limit)))
    return 0


def _get(client: ImageGen, args) -> int:
    generation = client.get(args.id)
    if args.output:
        _save(client, generation, args.output)
    _show(args, [generation])
    return 0


def _watch(client: ImageGen, args) -> int:
    last = None
    for last in client.watch(args.id):
        if args.json:
            print(json.dumps(last.raw), flush=True)
        else:
            print(_line(last), flush=True)
    return 0 if last is None or last.status == "completed" else EXIT_GENERATION_FAILED


def _cancel(client: ImageGen, args) -> int:
    _show(args, [client.cancel(args.id)])
    return 0


def _rm(client: ImageGen, args) -> int:
    client.delete(args.id)
    print(f"deleted {args.id}", file=sys.stderr)
    return 0


def _line(generation: Generation) -> str:
    where = ""
    if generation.queue_position is not None:
        where = f" ({generation.queue_position} ahead)"
    elif generation.progress is not None:
        where = f" ({generation.progress:.0%})"
    return f"{generation.id} {generation.status}{where}"


def _show(args, generations: list[Generation]) -> None:
    if args.json:
        print(
            json.dumps(
                [g.raw for g in generations] if len(generations) != 1 else generations[0].raw, indent=2
            )
        )
        return
    rows = [
        (g.id, g.status, g.model, g.user or "-", str(len(g.images)), (g.reason or g.prompt)[:50])
        for g in generations
    ]
    _table(("ID", "STATUS", "MODEL", "USER", "IMAGES", "PROMPT / REASON"), rows)
    for g in generations if len(generations) == 1 else ():
        for image in g.images:
            print(image.url)


def _listing(args, answer: Any, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """The platform's answer as JSON with --json, else as a table of these rows."""
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        _table(header, rows)


def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# -- models, keys, usage, provenance ------------------------------------------------------------------


def _models_ls(client: ImageGen, args) -> int:
    models = client.models()
    rows = [
        (
            m["name"],
            m["provider"],
            m.get("upstreamModel", "") or "-",
            ", ".join(f"{s['url']} ({s['status']})" for s in m["servers"]),
        )  # fmt: skip
        for m in models
    ]
    _listing(args, models, ("NAME", "PROVIDER", "UPSTREAM", "SERVERS"), rows)
    return 0


def _models_add(client: ImageGen, args) -> int:
    servers = [{"url": url, "maxConcurrency": args.max_concurrency} for url in args.server]
    model = client.add_model(args.name, args.provider, servers, upstreamModel=args.upstream_model)
    print(json.dumps(model, indent=2) if args.json else f"added {model['name']} ({model['id']})")
    return 0


def _models_rm(client: ImageGen, args) -> int:
    client.remove_model(args.name)
    print(f"removed {args.name}", file=sys.stderr)
    return 0


def _keys_create(client: ImageGen, args) -> int:
    key = client.create_key(args.project, args.name, args.kind, args.user)
    if args.json:
        print(json.dumps(key, indent=2))
    else:
        print(key["key"])
        print(f"({key['id']}; shown once: keep it now)", file=sys.stderr)
    return 0


def _keys_ls(client: ImageGen, args) -> int:
    keys = client.keys(args.project)
    rows = [
        (
            k["id"],
            k["name"],
            k["kind"],
            k.get("user") or "-",
            k["hint"],
            "revoked" if k.get("revokedAt") else "",
        )
        for k in keys
    ]
    _listing(args, keys, ("ID", "NAME", "KIND", "USER", "HINT", "STATE"), rows)
    return 0


def _keys_revoke(client: ImageGen, args) -> int:
    client.revoke_key(args.id)
    print(f"revoked {args.id}", file=sys.stderr)
    return 0


def _usage(client: ImageGen, args) -> int:
    usage = client.usage(user=args.user, model=args.model)
    rows = [(d["date"], str(d["generations"]), str(d["images"]), str(d["failed"])) for d in usage["days"]]
    totals = usage["totals"]
    rows.append(("total", str(totals["generations"]), str(totals["images"]), str(totals["failed"])))
    _listing(args, usage, ("DAY", "GENERATIONS", "IMAGES", "FAILED"), rows)
    return 0


def _verify(client: ImageGen, args) -> int:
    path = pathlib.Path(args.file)
    if not path.is_file():
        raise UsageError(f"no file {args.file!r}")
    verdict = client.verify(path.read_bytes())
    if args.json:
        print(json.dumps(verdict, indent=2))
    else:
        signer = verdict.get("signer", {}).get("commonName", "-")
        print(f"{verdict['validationState']}: {verdict['message']} (signer: {signer})")
    return 0 if verdict["validationState"] in ("valid", "untrusted") else EXIT_GENERATION_FAILED


if __name__ == "__main__":
    sys.exit(main())
