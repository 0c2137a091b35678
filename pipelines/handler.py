"""The Lambda's entry point by its deployed name, `pipelines.handler.handler`: deployments made before
the package's layout name it, so it stays; the handler lives in pipelines/aws/handler.py."""

from pipelines.aws.handler import handler

__all__ = ["handler"]
