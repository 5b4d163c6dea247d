"""jittor-sbvsr: Self-Blind-VSR (Bai & Pan, TPAMI 2024) in Jittor."""
from setuptools import setup

X86_LINUX = 'platform_system == "Linux" and platform_machine == "x86_64"'

setup(
    name="jittor-sbvsr",
    version="0.1.0",
    description="Jittor reimplementation of Self-Supervised Deep Blind Video Super-Resolution",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    packages=["jittor_sbvsr", "jittor_sbvsr.models", "jittor_sbvsr.data", "jittor_sbvsr.trainer", "cuda_ops"],
    package_data={"jittor_sbvsr": ["state_dict_keys.tsv"], "cuda_ops": ["*.cu", "*.cc", "*.h"]},
    install_requires=[
        "jittor==1.3.11.0",
        "numpy<2",  # numpy 2 makes Jittor 1.3.11 return wrong values silently
        "jittor-offline==0.0.7",  # oneDNN tarball for Jittor, so the first import needs no download
        # oneDNN 3 (GNU OpenMP build, as Jittor's) for the channels-last CPU convolutions: AMX bf16 kernels and
        # faster fp32 ones than Jittor's oneDNN 2.2 (cuda_ops/onednn_library.py); x86-64 Linux wheels only
        f"onednn-cpu-gomp==2023.2.0; {X86_LINUX}",
        f"onednn-devel-cpu-gomp==2023.2.0; {X86_LINUX}",
        "imageio",
        "imageio-ffmpeg",
        "pillow",
        "scikit-image",
        "tqdm",
    ],
    extras_require={"test": ["pytest", "torch==2.13.0"]},
    license="MIT",
)
