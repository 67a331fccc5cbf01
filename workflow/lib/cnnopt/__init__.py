"""cnnopt: the library behind the workflow.

Every DAG stage of the Snakemake workflow is a thin script that calls one function of
this package. The package never imports Snakemake, so each function can be imported,
tested and reused on its own.
"""

__version__ = "0.2.0"
