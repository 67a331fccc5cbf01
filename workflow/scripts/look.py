"""One look of the sequential design: judge the claims, plan the next look's seeds (checkpoint
look).

snakemake.input.metrics          results/runs/{run_id}/metrics.json of the runs this look judges
snakemake.input.previous_plan    look k - 1's plan (from the second look on)
snakemake.input.previous_claims  look k - 1's claims table (from the second look on)
snakemake.output.plan, .claims   this look's plan (JSON) and claims table (CSV)
snakemake.wildcards.k            the look, from 1
snakemake.params.verdicts, .scale, .claims   the decision rules and looks, the scale, the
                                 user's own claims file (None: the paper's claims)
snakemake.log[0]                 the rule log
"""

from pathlib import Path

from cnnopt.common import logs
from cnnopt.judge.aggregate import look
from cnnopt.judge.claims import load_claims, read_claims
from cnnopt.judge.rules import Rules

logs.setup(snakemake.log[0])
look(
    [Path(p).parent for p in snakemake.input.metrics],
    int(snakemake.wildcards.k),
    read_claims(snakemake.params.claims) if snakemake.params.claims else load_claims(),
    Rules.of(dict(snakemake.params.verdicts)),
    snakemake.output.plan,
    snakemake.output.claims,
    scale=snakemake.params.scale,
    previous_plan=snakemake.input.get("previous_plan"),
    previous_claims=snakemake.input.get("previous_claims"),
)
