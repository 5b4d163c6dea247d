"""Adam with upstream's 8 parameter groups and step learning-rate schedule (upstream-conventions §4), and its
state as numpy.

Update rule (PyTorch 0.4.1's Adam, which upstream trained with, and Jittor's):
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
"""
import math

import numpy as np

from ..runtime import jittor

jt = jittor()

# module attribute names of PWC_Recons, in upstream's group order; the last one gets the flow learning rate
GROUPS = ("in_conv", "extra_feat", "fusion_conv", "recons_net", "upsample_layers", "out_conv", "kernel_net",
          "flow_net")


def lr_at_epoch(base, epoch, lr_decay=100, gamma=0.5):
    """Step schedule of epoch ``epoch`` (1-based): base * gamma^floor((epoch - 1) / lr_decay), i.e. what
    upstream's PyTorch 0.4.1 StepLR gave (upstream-conventions §5)."""
    return base * gamma ** ((epoch - 1) // lr_decay)


class Adam(jt.optim.Adam):
    """Jittor's Adam counting the bias-correction step t per update.

    Jittor's own counter advances on every ``backward``, so with gradient accumulation (several backward
    calls per step) its bias correction would use the wrong t.
    """

    def __init__(self, params, lr, eps=1e-8, betas=(0.9, 0.999)):
        super().__init__(params, lr, eps=eps, betas=betas)
        self.updates = 0

    def step(self, loss=None, retain_graph=False):
        self.pre_step(loss, retain_graph)
        self.updates += 1
        b1, b2 = self.betas
        for pg in self.param_groups:
            step_size = pg["lr"] * math.sqrt(1 - b2 ** self.updates) / (1 - b1 ** self.updates)
            for p, g, v, m in zip(pg["params"], pg["grads"], pg["values"], pg["m"]):
                if p.is_stop_grad():
                    continue
                m.update(b1 * m + (1 - b1) * g)
                v.update(b2 * v + (1 - b2) * g * g)
                p.update(p - m * step_size / (jt.sqrt(v) + self.eps))
        self.post_step()

    def state(self):
        """Moments, step count and learning rates as numpy / Python values (picklable, torch-free)."""
        return {"updates": self.updates, "backward_calls": self.n_step,
                "groups": [{"name": pg["name"], "lr": pg["lr"], "base_lr": pg["base_lr"],
                            "m": [x.numpy() for x in pg["m"]], "v": [x.numpy() for x in pg["values"]]}
                           for pg in self.param_groups]}

    def load_state(self, state):
        """Restore ``state()`` output; the group names and parameter shapes must match."""
        names = [pg["name"] for pg in self.param_groups]
        saved = [g["name"] for g in state["groups"]]
        if names != saved:
            raise ValueError(f"optimizer groups {saved} in the checkpoint, {names} expected")
        for pg, g in zip(self.param_groups, state["groups"]):
            for dst, src in ((pg["m"], g["m"]), (pg["values"], g["v"])):
                if [tuple(x.shape) for x in dst] != [tuple(np.shape(x)) for x in src]:
                    raise ValueError(f"optimizer state of group {pg['name']} does not fit the model's parameters")
                for var, arr in zip(dst, src):
                    var.update(jt.array(np.asarray(arr, np.float32)))
            pg["lr"], pg["base_lr"] = g["lr"], g["base_lr"]
        self.updates, self.n_step = state["updates"], state["backward_calls"]
        jt.sync([x for pg in self.param_groups for x in pg["m"] + pg["values"]])

    def set_epoch(self, epoch, lr_decay=100, gamma=0.5):
        """Set every group's learning rate for ``epoch``; returns the first group's."""
        for pg in self.param_groups:
            pg["lr"] = lr_at_epoch(pg["base_lr"], epoch, lr_decay, gamma)
        return self.param_groups[0]["lr"]


def param_groups(model, lr, flow_lr):
    """The 8 upstream groups of PWC_Recons: [{'name', 'params', 'lr', 'base_lr'}], flow_net last."""
    groups = []
    for name in GROUPS:
        base = flow_lr if name == "flow_net" else lr
        groups.append({"name": name, "params": getattr(model, name).parameters(), "lr": base, "base_lr": base})
    return groups


def make_optimizer(model, lr=1e-4, flow_lr=1e-6):
    """Adam over the 8 parameter groups (betas 0.9 / 0.999, eps 1e-8, no weight decay)."""
    groups = param_groups(model, lr, flow_lr)
    owned = {id(p) for g in groups for p in g["params"]}
    missing = [n for n, p in model.named_parameters() if id(p) not in owned]
    if missing:
        raise ValueError(f"parameters outside the optimizer groups: {missing[:5]}")
    return Adam(groups, lr)
