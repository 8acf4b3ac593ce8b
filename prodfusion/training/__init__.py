"""Training: encoder adaptation, categorization, multilingual distillation.

Heavy dependencies (torch, sentence-transformers, datasets) are imported where they are used.
"""

from __future__ import annotations

from prodfusion.training.distill import DEFAULT_TEACHER, DistillConfig, distill
from prodfusion.training.parallel import ParallelData, read_parallel

__all__ = ["DistillConfig", "distill", "DEFAULT_TEACHER", "ParallelData", "read_parallel"]
