"""A child process for the supervisor tests: `python -m operations.supervisor
tests.unit.operations.supervised_child` with SUPERVISED_BEHAVIOUR = polite |
stubborn | crash."""
import os
import signal
import sys
import time

behaviour = os.environ.get("SUPERVISED_BEHAVIOUR", "polite")
print(f"hello from {behaviour}", flush=True)
if behaviour == "crash":
    sys.exit(3)
if behaviour == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
