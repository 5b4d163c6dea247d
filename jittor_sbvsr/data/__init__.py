"""Training and validation data, one module per concern (import them directly: the package itself imports
nothing, so that the numpy-only modules load without Jittor):

* ``kernels``, ``imgproc``, ``folders``, ``camera_clips``: blur kernels, image operations, folder layouts,
  synthetic clips (numpy only);
* ``train_set``: online blur-down training windows; ``val_set``: pre-degraded validation videos;
  ``lr_windows``: crops of a clip's own LR windows (``adapt``); ``workers``: Jittor data workers that survive
  a failing sample.
"""
