# The paper's future work (config `tuning`, config/future.yaml): per search and optimizer, the
# candidate rates train as ordinary runs (rule train), rung by rung under successive halving
# (rung: the scores of one rung and the candidates it promotes to the next); choose picks the
# best at the final budget, round after round while the choice sits at the edge of the rates
# tried and an extension is left (each round's extension trains through every rung); select
# writes the last round as the selection file, and the tuned runs read it (rule train's
# `choice` input; on the candidates' seed, rule adopt copies the winner's run). All three are
# checkpoints: which runs train next depends on their files. When a selection changes,
# exactly its tuned runs train again.

# Without searches these rules are not defined (nothing asks for them).
if SEARCHES:

    checkpoint rung:
        input:
            unpack(rung_inputs),
        output:
            TUNING_RUNG,
        log:
            "results/logs/tuning/{search}/{optimizer}/rung{k}.log",
        benchmark:
            "results/benchmarks/tuning/{search}/{optimizer}/rung{k}.tsv"
        wildcard_constraints:
            search=one_of(SEARCHES),
            optimizer=one_of(config["optimizers"]),
            k=r"\d+",
        retries: 0  # not transient: a retry would fail the same way
        localrule: True
        conda:
            "../../envs/cnnopt.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            chains=lambda w: search_chains(w.search, w.optimizer, extensions=False),
            keep=lambda w: (SEARCHES[w.search].get("halving") or {}).get("keep", 0.5),
            metric=config["tuning"]["metric"],
            code=code_version("rung.py"),
        script:
            "../scripts/rung.py"

    checkpoint choose:
        input:
            unpack(round_inputs),
        output:
            TUNING_ROUND,
        log:
            "results/logs/tuning/{search}/{optimizer}/round{round}.log",
        benchmark:
            "results/benchmarks/tuning/{search}/{optimizer}/round{round}.tsv"
        wildcard_constraints:
            search=one_of(SEARCHES),
            optimizer=one_of(config["optimizers"]),
            round=r"\d+",
        retries: 0  # not transient: a retry would fail the same way
        localrule: True
        conda:
            "../../envs/cnnopt.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            chains=lambda w: search_chains(w.search, w.optimizer),
            extensions=lambda w: SEARCHES[w.search].get("extend", 0),
            metric=config["tuning"]["metric"],
            code=code_version("choose.py"),
        script:
            "../scripts/choose.py"

    checkpoint select:
        input:
            last_round,
        output:
            TUNING_CHOICE,
        log:
            "results/logs/select/{search}/{optimizer}.log",
        benchmark:
            "results/benchmarks/select/{search}/{optimizer}.tsv"
        wildcard_constraints:
            search=one_of(SEARCHES),
            optimizer=one_of(config["optimizers"]),
        retries: 0  # not transient: a retry would fail the same way
        localrule: True
        conda:
            "../../envs/cnnopt.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            code=code_version("select.py"),
        script:
            "../scripts/select.py"

    rule tuning_tables:
        input:
            **run_inputs(TUNED_RUNS + REFERENCE_RUNS),
            choices=[
                TUNING_CHOICE.format(search=s, optimizer=o)
                for s, search in SEARCHES.items()
                for o in search["optimizers"]
            ],
        output:
            **{
                name: report(
                    path,
                    caption=f"../../report/captions/{name}.rst",
                    category=REPORT_CATEGORIES["tuning"],
                    labels={"table": name.replace("_", " ")},
                )
                for name, path in TUNING_TABLES.items()
            },
        log:
            "results/logs/tuning_tables.log",
        benchmark:
            "results/benchmarks/tuning_tables.tsv"
        retries: 0  # not transient: a retry would fail the same way
        localrule: True
        conda:
            "../../envs/cnnopt.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            labels={name: search.get("label", name) for name, search in SEARCHES.items()},
            budgets={name: search.get("budget") for name, search in SEARCHES.items()},
            verdicts=config["verdicts"],  # the decision rules of the claims
            scale=config["scale"],
            metric=config["tuning"]["metric"],  # which model of each run the claims read
            code=code_version("tuning_tables.py"),
        script:
            "../scripts/tuning_tables.py"

    rule tuning_figures:
        input:
            candidates=rules.tuning_tables.output.tuning_candidates,
            time=rules.tuning_tables.output.time_to_target,
        output:
            **{
                name: report(
                    path,
                    caption="../../report/captions/tuning.rst",
                    category=REPORT_CATEGORIES["tuning"],
                    labels={"figure": name.replace("_", " ")},
                )
                for name, path in TUNING_FIGURES.items()
            },
        log:
            "results/logs/tuning_figures.log",
        benchmark:
            "results/benchmarks/tuning_figures.tsv"
        retries: 0  # not transient: a retry would fail the same way
        localrule: True
        conda:
            "../../envs/cnnopt.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            searches=list(SEARCHES),
            code=code_version("tuning_figures.py"),
        script:
            "../scripts/tuning_figures.py"
