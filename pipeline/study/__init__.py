"""Studies: ``compare`` plans learning curves over budgets x seeds x encoders x heads (:mod:`.compare`), runs
them on an engine (:mod:`.engines`, below it) and writes reports and tables (:mod:`.report`, :mod:`.tables`);
simulated active learning (:mod:`.active_compare`).

May import: everything except ``cli``.
"""
