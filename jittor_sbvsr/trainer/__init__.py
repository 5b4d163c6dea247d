"""Self-supervised training of PWC_Recons, one module per concern (import them directly: the package itself
imports nothing, so that ``options`` and ``experiment`` load without Jittor):

* ``options``: command-line options and templates (no Jittor);
* ``experiment``: the experiment folder, checkpoints, and the errors that end a run (no Jittor);
* ``optim``: Adam with upstream's parameter groups and schedule;
* ``loop``: training steps, validation, the epoch loop;
* ``adaptation``: the steps of ``adapt`` (test-time adaptation on one clip).
"""
