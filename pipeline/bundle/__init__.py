"""Model bundles: the directory format and its loading (:mod:`.bundle`), the manifest schema and its seal
(:mod:`.manifest`) and the whole trust policy (:mod:`.trust`: where a bundle's encoder may resolve, which
types its head may hold).

May import: the package root, ``data``, ``encoders``, ``store``, ``heads``.
"""
