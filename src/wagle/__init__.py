"""wagle: weight attribution-guided unlearning for Hugging Face causal language models.

The pipeline, one public step at a time:
data (``wagle.data``) → attribution (``wagle.attribution``) → unlearning (``wagle.unlearning``)
→ evaluation (``wagle.evaluation``) → report (``wagle.report``).
"""

__version__ = "0.1.0"
