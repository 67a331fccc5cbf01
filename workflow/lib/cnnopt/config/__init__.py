"""The configuration (every rule module reads it): ``schema`` validates it and fills in
the schema's defaults, ``grid`` resolves variants into one spec per run of the grid, and
``searches`` expands the tuning block into candidate and tuned runs. ``schemafile`` reads
the schema, the one home of every default, and fills the defaults of a definition in
(``grid`` fills a merged schedule's or model's from it).

This file imports nothing, so importing one module does not pull in the others.
"""
