"""Reads wrk --latency output on stdin; prints `req/s p50_ms p99_ms non2xx [socket errors]`."""
import re
import sys

out = sys.stdin.read()


def ms(label):
    m = re.search(r"^\s*" + label + r"%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000}[unit]


rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
errors = re.search(r"Socket errors:.*", out)
fields = [f"{rps:.0f}", f"{ms('50'):.3f}", f"{ms('99'):.3f}", str(int(bad.group(1)) if bad else 0)]
if errors:
    fields.append(errors.group(0).replace(" ", "_"))
print(" ".join(fields))
