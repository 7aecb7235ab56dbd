"""Data in: the one reader layer (:mod:`.readers`: csv/tsv/jsonl/json/parquet/``rt``/``hf:``, validated once),
datasets, leak-free splits and label budgets (:mod:`.dataset`), summaries (:mod:`.summary`), JSON Lines
(:mod:`.jsonlines`) and unlabelled text sources (:mod:`.unlabelled`).

May import: the package root (errors, paths, progress) only.
"""
