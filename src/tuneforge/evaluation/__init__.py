"""Evaluation: ``tuneforge eval`` — held-out loss and accuracy through training's own evaluation, DPO
preference accuracy against the run's reference, and generation metrics (exact match, BLEU, ROUGE-L, chrF)
whose tokenizers are right for Chinese as well as English.

The engine (config, data, models, losses, training) never imports this package; it imports the engine.
"""
