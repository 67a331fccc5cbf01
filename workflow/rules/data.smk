# Data: fetch the archive (URLs only), verify its checksum, decode it once into cached arrays.

DATA_ARRAYS = "results/data/cifar10.npz"
DATA_MANIFEST = "results/data/manifest.json"


if is_url(config["data_source"]):
    DATA_INPUT = f"results/data/download/{download_name(config['data_source'])}"

    rule download_data:
        output:
            DATA_INPUT,
        log:
            "results/logs/download_data.log",
        benchmark:
            "results/benchmarks/download_data.tsv"
        retries: 0  # not transient: a retry would fail the same way
        localrule: True  # compute nodes of a cluster often have no internet
        conda:
            "../../envs/cnnopt.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=60,
        params:
            url=config["data_source"],
            checksum=config["data_checksum"],
            retries=config["download_retries"],
            code=code_version("download_data.py"),
        script:
            "../scripts/download_data.py"

else:
    DATA_INPUT = config["data_source"]


rule prepare_data:
    input:
        source=DATA_INPUT,
    output:
        arrays=DATA_ARRAYS,
        manifest=report(
            DATA_MANIFEST,
            caption="../../report/captions/manifest.rst",
            category=REPORT_CATEGORIES["data"],
            labels={"file": "data manifest"},
        ),
    log:
        "results/logs/prepare_data.log",
    benchmark:
        "results/benchmarks/prepare_data.tsv"
    retries: 0  # not transient: a retry would fail the same way
    conda:
        "../../envs/cnnopt.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        checksum=config["data_checksum"],
        # a URL is recorded as such (its input is the downloaded copy); a local path is the input
        source_label=config["data_source"] if is_url(config["data_source"]) else None,
        code=code_version("prepare_data.py"),
    script:
        "../scripts/prepare_data.py"
