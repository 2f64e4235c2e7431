"""Send one notice from a plain script.

Run `herald serve` first, or run this without it: the message is then
spooled and delivered when the relay starts.
"""

import sys
from pathlib import Path

# Finds herald_notify.py one folder up when the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from herald_notify import HeraldError, notify  # noqa: E402


def main() -> int:
    try:
        outcome = notify(
            "Daily check finished: 3 strategies running, no errors.",
            title="Herald example",
            wait=True,
        )
    except HeraldError as error:
        print("not sent:", error, file=sys.stderr)
        return 1
    print(outcome.status, outcome.id)
    if outcome.error:
        print(outcome.error.get("message"), outcome.error.get("hint"), file=sys.stderr)
    return 0 if outcome.status in ("delivered", "spooled", "queued", "sending") else 1


if __name__ == "__main__":
    sys.exit(main())
