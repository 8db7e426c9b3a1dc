"""Reference implementations of every exercise, one module per ``lmkit`` module.

``solutions.scale.count_parameters`` is the reference of ``lmkit.scale.count_parameters``
(same name, same signature). Read them after you have tried; reference mode
(``LMKIT_REFERENCE``) runs them in place of exercises you skip.
"""
