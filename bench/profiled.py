"""Run ``ncmcp`` (CLI arguments) or, with ``--floor``, the floor server with cProfile on demand.

    python bench/profiled.py OUT.prof serve --port 8000 ...
    python bench/profiled.py OUT.prof --floor --port 8001

SIGUSR1 starts profiling, SIGUSR2 stops it and writes OUT.prof, so start-up and warm-up stay out of
the profile. The profiler counts CPU time (``time.process_time``), not wall time, so waiting in
``epoll`` does not show up as work. Used by ``run.py --profile`` only.
"""

import cProfile
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    out, rest = sys.argv[1], sys.argv[2:]
    profile = cProfile.Profile(time.process_time)

    def start(signum: int, frame: object) -> None:
        profile.enable()

    def stop(signum: int, frame: object) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    if rest and rest[0] == "--floor":
        import floor_server

        sys.argv = ["floor_server.py", *rest[1:]]
        floor_server.main()
    else:
        from ncmcp.cli import main as cli_main

        cli_main(rest)


if __name__ == "__main__":
    main()
