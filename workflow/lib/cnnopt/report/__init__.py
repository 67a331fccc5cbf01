"""Rule module report.smk: the HTML report (``html``), its tables (``tables``), its prose
(``text``), the tuning section (``future``) and number formatting (``formatting``).

This file imports nothing, so importing one module does not pull in the others.
"""
