"""The Self-Blind-VSR network: PWC_Recons and its parts."""
from .kernel_net import KernelNet
from .pwc_net import Flow_PWC, backward_warp
from .pwc_recons import PWC_Recons, ResBlock, blur_down

__all__ = ["PWC_Recons", "ResBlock", "blur_down", "Flow_PWC", "backward_warp", "KernelNet"]
