"""How the report writes a number: the one place cells and sentences are formatted.

Each function takes a number (or None/NaN, shown as an em dash) and returns its text.
``FILTERS`` registers them with the report's Jinja environment, so the table rows carry
numbers and the template formats each cell with a filter, e.g. ``{{ r.final | pm(r.final_std) }}``;
the sentences of ``report_text`` call the same functions.
"""

from __future__ import annotations

import math

import pandas as pd

DASH = "\u2014"
MINUS = "\u2212"


def isnum(x) -> bool:
    """A finite number (not None, NA, NaN or text)."""
    try:
        return x is not None and x is not pd.NA and not isinstance(x, (str, bool)) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x, nd: int = 2) -> str:
    """A number with ``nd`` decimals, or an em dash when missing."""
    return f"{float(x):.{nd}f}" if isnum(x) else DASH


def signed(x, nd: int = 2) -> str:
    """A difference with its sign (a minus sign, not a hyphen), or an em dash."""
    if not isnum(x):
        return DASH
    v = float(x)
    return f"+{v:.{nd}f}" if v >= 0 else f"{MINUS}{abs(v):.{nd}f}"


def pm(mean, std=None, nd: int = 2, sign: bool = False, missing: str | None = None) -> str:
    """``mean ± std`` (std omitted when missing); ``sign`` writes the mean as a difference.

    ``missing`` is shown when there is no mean (default an em dash).
    """
    if not isnum(mean):
        return missing or DASH
    head = signed(mean, nd) if sign else fmt(mean, nd)
    return f"{head} \u00b1 {fmt(std, nd)}" if isnum(std) else head


def interval(low, high, nd: int = 2, sign: bool = False) -> str:
    """``[low, high]`` (signed with ``sign``), or an em dash when the interval is missing."""
    if not isnum(low):
        return DASH
    f = signed if sign else fmt
    return f"[{f(low, nd)}, {f(high, nd)}]"


def duration(seconds) -> str:
    """Seconds as "12.3 s", "4 min 05 s" or "2 h 03 min"."""
    if not isnum(seconds):
        return DASH
    s = float(seconds)
    if s < 120:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def count(x) -> str:
    """A whole number with thousands separators ("551,466")."""
    return f"{int(x):,}" if isnum(x) else DASH


def general(x, digits: int | None = None) -> str:
    """A number in the shortest form (``:g``), or with ``digits`` significant digits."""
    if not isnum(x):
        return DASH
    return f"{float(x):.{digits}g}" if digits else f"{float(x):g}"


def yesno(x) -> str:
    """"yes" or "no"; an em dash for None (the setting does not apply)."""
    return DASH if x is None else ("yes" if x else "no")


def dash(x) -> str:
    """The value, or an em dash when it is None or empty."""
    return DASH if x is None or x == "" else x


def pvalue(x) -> str:
    """A p-value: three significant digits, "< 0.0001" below that, or an em dash."""
    if not isnum(x):
        return DASH
    v = float(x)
    return "< 0.0001" if v < 1e-4 else f"{v:.3g}"


def percent(x, nd: int = 1) -> str:
    """A rate in [0, 1] as a percentage ("4.8 %"), or an em dash."""
    return f"{100 * float(x):.{nd}f} %" if isnum(x) else DASH


#: The Jinja filters of the report template: ``{{ x | num(1) }}``, ``{{ d | signed }}``, ...
FILTERS = {"num": fmt, "signed": signed, "pm": pm, "interval": interval, "duration": duration,
           "count": count, "g": general, "yesno": yesno, "dash": dash, "pvalue": pvalue,
           "percent": percent}
