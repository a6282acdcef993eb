"""Model kinds: the cross-encoder (claim and statement read together) and the few-shot
sentence kind (sentence-transformer body and linear head, one claim a model).

`base.ModelKind` is the interface, `registry` maps names to implementations; `cross_encoder`
and `sentence` implement it, with their models and training in `backbones`,
`cross_encoder_training`, `sentence_model`, `sentence_training` and `calibration`.
"""
