"""Campaigns: audiences in, each recipient texted exactly once, every row accounted for.

The steps are separate modules so each can be tested alone and a crashed run
can resume between any two of them:

* :mod:`.audience` reads a DataFrame, Parquet/CSV file or SQL query as Arrow batches;
* :mod:`.screen` checks numbers (:mod:`.phones`), renders texts (:mod:`.templating`),
  settles send times (:mod:`.schedule`) and prices rows (:mod:`.points`);
* :mod:`.plan` dedupes, applies opt-outs and cuts chunks in a scratch DuckDB;
* :mod:`.prepare` runs reading, screening and planning as one pass;
* :mod:`.ledger` keeps the durable send ledger in the warehouse;
* :mod:`.sender` and :mod:`.resolve` send chunks and settle the ones left in doubt;
* :mod:`.runner` runs the steps in order, finishing what an earlier run left pending.

Nothing here imports Airflow at module level; the operators in
:mod:`every8d.operators.send` and :mod:`every8d.operators.cancel` are the glue.
"""
