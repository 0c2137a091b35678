"""``bin/image``: the one image, built and run here without a Docker engine.

    bin/image build [--tag T] [--refresh-base]   container/Dockerfile as it is, with buildah
    bin/image run [--tag T] [--name N] -- ARGS    the image's entrypoint with ARGS, as an ECS task runs it
    bin/image invoke [--tag T] EVENT_JSON         one Lambda invocation of the image, served by awslambdaric
    bin/image size [--tag T]                      the image's size and what takes it

How each works: ``pipelines.devstack.image`` (build, run) and ``pipelines.devstack.lambda_runtime``
(the local Lambda Runtime API).
"""

from __future__ import annotations

import argparse
import json
import sys

from pipelines.devstack.image import DEFAULT_TAG, ImageError, build, image_size, run, size_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/image", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    built = sub.add_parser("build", help="build container/Dockerfile with buildah (base from Debian's archive, cached)")
    built.add_argument("--refresh-base", action="store_true", help="make the base again from Debian's archive")
    ran = sub.add_parser("run", help="run the image's entrypoint with ARGS as an ECS task would (host network, read-only root)")
    ran.add_argument("--name", help="the container's name (for `podman kill`)")
    ran.add_argument("args", nargs=argparse.REMAINDER, help="the entrypoint's arguments, e.g. run configs/X.yml.liquid --plan URI --shard 0")
    invoked = sub.add_parser("invoke", help="one Lambda invocation: a container served by awslambdaric against a local Runtime API")
    invoked.add_argument("event", help="the event, as JSON")
    sub.add_parser("size", help="the image's size and what takes it")
    for each in (built, ran, invoked, sub.choices["size"]):
        each.add_argument("--tag", default=DEFAULT_TAG, help=f"the image (default {DEFAULT_TAG})")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "build":
        print(build(args.tag, refresh_base=args.refresh_base))
        return 0
    if args.command == "run":
        return run(args.tag, args.args[1:] if args.args[:1] == ["--"] else args.args, name=args.name)
    if args.command == "invoke":
        from pipelines.devstack.lambda_runtime import invoke_once

        return invoke_once(args.tag, json.loads(args.event))
    total = image_size(args.tag)
    print(f"{args.tag}: {total / 1e6:.0f} MB")
    for what, size in size_report(args.tag):
        print(f"{size / 1e6:8.1f} MB  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
