"""The model configuration: the one record of the numbers that shape a PWC_Recons network.

Every checkpoint this project writes stores it under ``meta["model_config"]``, so a network trained with
another width or depth is rebuilt as it was trained, with no flags. Files without it (upstream checkpoints,
converted upstream weights) describe the released configuration, which is the default here.
"""
from dataclasses import asdict, dataclass, fields

META_KEY = "model_config"


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network: colour channels, frames per window, SR scale, blur-kernel size, feature width,
    ResBlocks of the per-frame feature extractor and of the reconstruction trunk."""
    n_colors: int = 3
    n_sequence: int = 5
    scale: int = 4
    ksize: int = 13
    n_feat: int = 128
    extra_rbs: int = 3
    recons_rbs: int = 20

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"model config: {f.name} must be a non-negative integer (got {value!r})")
        if self.n_sequence % 2 != 1 or self.ksize % 2 != 1:
            raise ValueError("model config: n_sequence and ksize must be odd")
        if self.scale < 1 or self.scale & (self.scale - 1):
            raise ValueError(f"model config: scale must be a power of two (got {self.scale})")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, record):
        """The configuration a checkpoint stored; ValueError naming unknown or invalid entries."""
        if not isinstance(record, dict):
            raise ValueError(f"model config must be a dict, not {type(record).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"model config has unknown entries {unknown}")
        return cls(**record)

    @classmethod
    def from_meta(cls, meta):
        """The configuration in a checkpoint's meta record, or the released one when it stores none."""
        record = (meta or {}).get(META_KEY)
        return cls() if record is None else cls.from_dict(record)

    def describe(self):
        """Short text, e.g. 'n_feat 128, 3+20 ResBlocks, x4'."""
        return f"n_feat {self.n_feat}, {self.extra_rbs}+{self.recons_rbs} ResBlocks, x{self.scale}"

    def build(self):
        """A PWC_Recons network of this configuration (imports Jittor)."""
        from .models import PWC_Recons

        return PWC_Recons(n_colors=self.n_colors, n_sequence=self.n_sequence, extra_RBS=self.extra_rbs,
                          recons_RBS=self.recons_rbs, n_feat=self.n_feat, scale=self.scale, ksize=self.ksize)
