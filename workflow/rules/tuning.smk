# The paper's future work (config `tuning`, config/future.yaml): per search and optimizer, the
# candidate rates train as ordinary runs (rule train), select picks one on validation accuracy,
# and the tuned runs read it (rule train's `choice` input). When a selection changes, exactly
# its tuned runs train again.

# Without searches these rules are not defined (nothing asks for them).
if SEARCHES:

    rule select:
        input:
            metrics=lambda w: run_files(RUN_FILES["metrics"], search_candidates(w)),
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
            rates=search_candidates,
            metric=config["tuning"]["metric"],
            code=code_version("select.py"),
        script:
            "../scripts/select.py"

    rule tuning_tables:
        input:
            **run_inputs(TUNED_RUNS),
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
            verdicts=config["verdicts"],  # the decision rules of the claims
            scale=config["scale"],
            code=code_version("tuning_tables.py"),
        script:
            "../scripts/tuning_tables.py"

    rule tuning_figures:
        input:
            candidates=rules.tuning_tables.output.tuning_candidates,
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
