"""The skip-risk model: the probability that the listener skips a track EARLY if it plays next.

A LightGBM binary classifier over the ranker's own candidate rows (:mod:`features.rows`, the
same code path offline and online), exported to ONNX (``skip.onnx`` in the model version folder)
and scored in one onnxruntime call per batch, like the ranker. :mod:`models.skip.examples`
builds the training states, :mod:`models.skip.train` fits and exports, :mod:`models.skip.scorer`
serves, :mod:`models.skip.accuracy` and :mod:`models.skip.evaluation` measure it the way the
WSDM Cup 2019 skip prediction challenge did.
"""
