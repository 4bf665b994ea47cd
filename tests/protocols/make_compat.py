"""Regenerates protocols/compat/minor5.json, the wire shapes of release 0.5 (minor 5).

Run by hand, once per release that the next one must still talk to:

    rm -rf /tmp/rel && mkdir /tmp/rel && git archive f42c304 protocols | tar -x -C /tmp/rel
    .venv/bin/python tests/protocols/make_compat.py /tmp/rel > protocols/compat/minor5.json

f42c304 is the last commit of release 0.5's protocol. The file is the JSON schema of every
message type that release knows, and of its envelope, as that release's own models say.
"""

from __future__ import annotations

import json
import sys


def main(release_root: str) -> None:
    sys.path.insert(0, release_root)
    from protocols import envelope  # the old release's package, first on the path
    from protocols.messages import BODY_TYPES

    assert envelope.__file__ and envelope.__file__.startswith(release_root), envelope.__file__
    doc = {
        "envelope": envelope.Envelope.model_json_schema(),
        "bodies": {name: cls.model_json_schema() for name, cls in sorted(BODY_TYPES.items())},
    }
    json.dump(doc, sys.stdout, sort_keys=True, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
