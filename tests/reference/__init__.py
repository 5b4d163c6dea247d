"""Independent PyTorch reference of Self-Blind-VSR, written from docs/spec, used only by parity tests."""
