"""Drives LiveKit's official Python SDK (livekit-api) for Warden's interop tests.

    LK_KEY=… LK_SECRET=… python tests/interop/token.py mint '<spec json>'   -> prints a JWT
    LK_KEY=… LK_SECRET=… python tests/interop/token.py verify <token>       -> prints the claims as JSON

spec: {"identity", "name", "ttl" (seconds), "metadata", "attributes", "kind", "video": {camelCase grants}}
The secret comes from the environment so it never shows in a process list.
"""
import os
import sys

# This file shares its name with the stdlib `token` module: keep its own
# directory off the import path, or `import dataclasses` would import this file.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402

from livekit import api  # noqa: E402
from livekit.api.access_token import camel_to_snake, snake_to_lower_camel  # noqa: E402


def mint(key, secret, spec):
    video = {camel_to_snake(k): v for k, v in spec.get("video", {}).items()}
    token = api.AccessToken(key, secret).with_identity(spec.get("identity", ""))
    if video:
        token = token.with_grants(api.VideoGrants(**video))
    if spec.get("name"):
        token = token.with_name(spec["name"])
    if spec.get("metadata"):
        token = token.with_metadata(spec["metadata"])
    if spec.get("attributes"):
        token = token.with_attributes(spec["attributes"])
    if spec.get("kind"):
        token = token.with_kind(spec["kind"])
    if spec.get("ttl"):
        token = token.with_ttl(datetime.timedelta(seconds=spec["ttl"]))
    return token.to_jwt()


def verify(key, secret, token):
    claims = api.TokenVerifier(key, secret).verify(token)
    video = {}
    if claims.video is not None:
        for field in dataclasses.fields(claims.video):
            value = getattr(claims.video, field.name)
            if value is not None:
                video[snake_to_lower_camel(field.name)] = value
    return {
        "identity": claims.identity,
        "name": claims.name or "",
        "metadata": claims.metadata or "",
        "attributes": claims.attributes or {},
        "kind": claims.kind or "",
        "video": video,
    }


def main():
    key, secret = os.environ.get("LK_KEY"), os.environ.get("LK_SECRET")
    if not key or not secret or len(sys.argv) != 3:
        print("usage: LK_KEY=… LK_SECRET=… token.py mint <spec-json> | verify <token>", file=sys.stderr)
        return 2
    cmd, arg = sys.argv[1], sys.argv[2]
    try:
        if cmd == "mint":
            print(mint(key, secret, json.loads(arg)))
        elif cmd == "verify":
            print(json.dumps(verify(key, secret, arg)))
        else:
            print(f"unknown command {cmd}", file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001 - any refusal is one line and exit 1
        print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
