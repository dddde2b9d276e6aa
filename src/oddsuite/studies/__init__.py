"""Studies: experiments that run whole evaluations and compare them — lockstep runs of one
detector on two backends (or twice), latency distributions of model variants, training
determinism, and (being moved here) compare, fault sweeps, the MLP experiment and FAP+T.

May import ``evaluate``, ``suite``, ``metrics``, ``models``, ``models.accelerator``, ``quant``
and ``training``; nothing below ``studies`` imports it. Each study is a module with one entry
function that writes a results folder (JSON, CSV, PNG) which ``report`` reads.
"""
